"""Checkpoints written atomically and loaded without running code from them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import PipelineError


def save_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to a temporary file beside ``path``, flush it, then rename.

    A crash mid-write leaves the previous checkpoint intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def load_weights(
    model: torch.nn.Module, payload: dict[str, Any], path: Any, tokenizer: Any
) -> None:
    """Load a checkpoint's weights into the model its config describes; weights that do not
    fit (the config or the tokenizer folder ``tokenizer`` belongs to another run) are one
    error naming both, instead of torch's list of every mismatched tensor."""
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:200]
        raise PipelineError(
            f"The weights in {path} do not fit the model its config describes with the tokenizer "
            f"in {tokenizer} ({detail.rstrip('.')}). The checkpoint's config or the tokenizer "
            "folder belongs to another run: use the best.pt and tokenizer/ that one run wrote."
        ) from None
