"""Checkpoints written atomically and loaded without running code from them."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from pipeline import __version__
from pipeline.errors import PipelineError
from pipeline.runtime.files import storage_faults

#: The checkpoints a run writes, and the temporary files they are written to first.
CHECKPOINT_NAMES = ("last.pt", "best.pt")
TMP_SUFFIX = ".tmp"


def _tmp_prefix(name: str) -> str:
    return f".{name}."


def save_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to a temporary file beside ``path``, flush it, then rename.

    A crash mid-write leaves the previous checkpoint intact, never a truncated one (a kill
    leaves the temporary file: :func:`remove_partial_writes`). A full,
    read-only or forbidden folder is a :class:`~pipeline.errors.StorageError` naming ``path``
    (``torch.save`` reports a full disk as a ``RuntimeError``).
    """
    path = Path(path)
    with storage_faults(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=_tmp_prefix(path.name), suffix=TMP_SUFFIX, dir=path.parent
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes a killed process never finished
    (``.last.pt.*.tmp``, ``.best.pt.*.tmp``); return them. Only for the folder's one writer."""
    removed = []
    for name in CHECKPOINT_NAMES:
        for tmp in Path(folder).glob(f"{_tmp_prefix(name)}*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(
            f"Checkpoint not found: {path}. Check the path (runs write "
            "last.pt and best.pt into their output directory)."
        )
    with path.open("rb") as handle:
        head = handle.read(4)
    if head[:2] != b"PK" and head != b"\x80\x02\x8a\n":  # torch.save: zip (legacy: pickle)
        what = "it is empty (0 bytes)" if not head else f"it starts with {head!r}"
        raise PipelineError(
            f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive; {what}). "
            "Pass the best.pt or last.pt that a training run wrote."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "")
        reason = reason.split(". ")[0][:200]  # torch appends paragraphs of advice
        if "Weights only load failed" in str(exc):
            raise PipelineError(_pickled(path, str(exc))) from None
        if head[:2] == b"PK" and "zip" in reason.lower():
            raise PipelineError(
                f"Checkpoint {path} cannot be read: it is truncated or corrupted ({reason}); it "
                "was probably copied or written only in part. Use another copy, or the run's "
                "last.pt."
            ) from None
        raise PipelineError(
            f"Checkpoint {path} cannot be read ({type(exc).__name__}: {reason}). It may be "
            "truncated, or not a checkpoint of this pipeline; use another one."
        ) from None


def _pickled(path: Path, message: str) -> str:
    """The refusal of a file that holds pickled objects besides tensors and plain data."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    what = f" (it names {found.group(1)})" if found else ""
    return (
        f"{path} holds pickled Python objects or code{what}, not only tensors and plain "
        "data; unpickling them could run code, so it is refused for safety. Use a best.pt or "
        "last.pt that a training run of this pipeline wrote; if you made the file, save "
        "state_dict()s and plain values (torch.save({'model': model.state_dict(), ...}))."
    )


def load_weights(
    model: torch.nn.Module, weights: dict[str, Any], path: Any, tokenizer: Any
) -> None:
    """Load a checkpoint's weights into the model its config describes; weights that do not
    fit (the config or the tokenizer folder ``tokenizer`` belongs to another run) are one
    error naming both, instead of torch's list of every mismatched tensor."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:200]
        raise PipelineError(
            f"The weights in {path} do not fit the model its config describes with the tokenizer "
            f"in {tokenizer} ({detail.rstrip('.')}). The checkpoint's config or the tokenizer "
            "folder belongs to another run: use the best.pt and tokenizer/ that one run wrote."
        ) from None


#: The layout of the checkpoints this version writes; it reads every format up to it.
#: 1: seqpipe 0.1 before the format was recorded (the same keys); 2: this typed layout;
#: 3: + ``data``, the fingerprint of the data trained on (absent in older ones: not checked).
CHECKPOINT_FORMAT = 3


@dataclass
class Checkpoint:
    """What ``last.pt`` / ``best.pt`` hold, typed: built in one place (the training loop),
    saved atomically, loaded with ``weights_only``. On disk it is a plain dict of these
    fields (``None`` left out) plus a task's own keys (``extra``)."""

    model: dict[str, Any]  # the weights (state_dict)
    config: dict[str, Any] = field(default_factory=dict)  # the run's resolved config
    labels: list[str] | None = None  # classifiers: the label names, in id order
    tokenizer_dir: str | None = None  # the fitted tokenizer's folder
    data: dict[str, Any] | None = None  # what it was trained on (pipeline.data.fingerprint)
    mlflow_run_id: str | None = None  # the run that wrote it
    versions: dict[str, str] = field(default_factory=dict)
    epoch: int = 0  # the last epoch trained (fully or in part)
    metrics: dict[str, float] = field(default_factory=dict)  # that epoch's
    history: list[dict[str, float]] = field(default_factory=list)
    resume: dict[str, Any] | None = None  # where training stands (ResumePoint.state_dict())
    finished: bool = False
    optimizer: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    average: dict[str, Any] | None = None  # optimizer.average: training weights, count
    extra: dict[str, Any] = field(default_factory=dict)  # a task's own keys
    format: int = CHECKPOINT_FORMAT

    @property
    def kind(self) -> str:
        """The task kind of the run that wrote it (classification before kinds existed)."""
        task = self.config.get("task") if isinstance(self.config, dict) else None
        return str((task or {}).get("type") or "classification")

    def to_dict(self) -> dict[str, Any]:
        names = [f.name for f in fields(self) if f.name != "extra"]
        payload = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        return {**self.extra, **payload}

    @classmethod
    def from_dict(cls, payload: Any, path: Any = "the checkpoint", what: str = "") -> Checkpoint:
        """A checkpoint from what ``torch.load`` returned; a foreign file or one from a newer
        version is one clear error (``what``: the kind the caller wants, for the message)."""
        if not isinstance(payload, dict) or "model" not in payload:
            raise PipelineError(
                f"{path} is not a {what + ' ' if what else ''}checkpoint of this pipeline (it "
                "holds no model weights). Use the best.pt or last.pt that a training run wrote."
            )
        written = payload.get("format", 1)
        if not isinstance(written, int) or written > CHECKPOINT_FORMAT:
            by = (payload.get("versions") or {}).get("pipeline", "a newer seqpipe")
            raise PipelineError(
                f"{path} was written by seqpipe {by} in checkpoint format {written}; this "
                f"seqpipe ({__version__}) reads formats up to {CHECKPOINT_FORMAT}. Upgrade "
                "seqpipe (pip install -U seqpipe) to use it."
            )
        return replace(cls.of(payload), format=written)

    @classmethod
    def of(cls, values: dict[str, Any]) -> Checkpoint:
        """A checkpoint of this version from named values; names that are not fields (a
        task's own keys) go to ``extra``."""
        known = {f.name for f in fields(cls)} - {"extra", "format"}
        extra = {k: v for k, v in values.items() if k not in known and k != "format"}
        return cls(**{k: v for k, v in values.items() if k in known}, extra=extra)

    def save(self, path: str | Path) -> Path:
        return save_atomic(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path, what: str = "") -> Checkpoint:
        return cls.from_dict(load_checkpoint(path), path, what)

    def for_serving(self) -> Checkpoint:
        """The same model without the training state (optimizer, schedule, history...)."""
        return replace(
            self,
            optimizer=None,
            schedule=None,
            scaler=None,
            average=None,
            history=[],
            resume=None,
        )
