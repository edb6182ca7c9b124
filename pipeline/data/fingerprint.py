"""What the data *is*, by content: keys for the caches of local files, and the fingerprint a
checkpoint records of the data it was trained on, checked when the run is resumed.

Modification times are not content: ``cp -p``, ``rsync -a``, ``tar x`` and ``touch -r`` give an
edited file its old time. So a local file's cache entry is named by its size and a sha256 of
its bytes (:func:`content_name`), never by its path and time alone.

A checkpoint's ``data`` (:func:`fingerprint`) holds, per split, the rows and a sha256 of every
row the model sees (after filtering, carving and subsampling), the label names of a
classifier and the tokenizer's fingerprint (its vocabulary). ``trainer.resume`` compares it
with the data it finds (:func:`check_resumed`) and takes the tokenizer the run saved instead of
fitting another (:func:`resumed_tokenizer`). A checkpoint without ``data`` (written before it
existed) is not checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import DataError

_CHUNK = 1 << 20
_ROWS_PER_BATCH = 2000  # part of the split digest: changing it changes every digest


def files_digest(files: Iterable[str | Path]) -> str:
    """sha256 over each file's size and bytes, in the order given."""
    digest = hashlib.sha256()
    for name in files:
        path = Path(name)
        digest.update(f"{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def content_name(files: Iterable[str | Path]) -> str:
    """A ``datasets`` config name that keys its cache on the files' content."""
    return "content-" + files_digest(files)[:20]


def split_digest(dataset: Any) -> str:
    """sha256 of a split's rows (every column), in order: the same rows give the same digest
    wherever and however they are stored."""
    digest = hashlib.sha256(",".join(sorted(dataset.column_names)).encode())
    for batch in dataset.iter(batch_size=_ROWS_PER_BATCH):
        digest.update(json.dumps(batch, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


def fingerprint(splits: Mapping[str, Any], source: str, labels: list[str] | None) -> dict:
    """What a checkpoint records of its data: rows and digest per split, labels, source."""
    rows = {name: {"rows": len(ds), "sha256": split_digest(ds)} for name, ds in splits.items()}
    return {
        "source": source,
        "splits": rows,
        "labels": None if labels is None else [str(label) for label in labels],
    }


def differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words (rows, content, labels)."""
    found = []
    before, after = saved.get("splits") or {}, current.get("splits") or {}
    for name in sorted(set(before) | set(after), key=_split_order):
        old, new = before.get(name), after.get(name)
        if old is None or new is None:
            found.append(
                f"{name}: {'absent' if old is None else 'present'} -> "
                f"{'absent' if new is None else 'present'}"
            )
        elif old.get("rows") != new.get("rows"):
            found.append(f"{name}: {old.get('rows'):,} rows -> {new.get('rows'):,} rows")
        elif old.get("sha256") != new.get("sha256"):
            found.append(f"{name}: same {new.get('rows'):,} rows, other content")
    if saved.get("labels") != current.get("labels"):
        found.append(f"labels: {_labels(saved.get('labels'))} -> {_labels(current.get('labels'))}")
    return found


def _split_order(name: str) -> tuple[int, str]:
    order = ("train", "validation", "test")
    return (order.index(name) if name in order else len(order), name)


def _labels(labels: list[str] | None) -> str:
    return "none" if labels is None else "[" + ", ".join(labels) + "]"


def check_resumed(resumed: Any, current: Mapping[str, Any], where: str | Path) -> None:
    """Refuse to resume ``resumed`` (a ``Checkpoint``) on data other than its own.

    ``where`` names the checkpoint in the message. No recorded fingerprint: not checked.
    """
    saved = getattr(resumed, "data", None)
    if not saved:
        return
    found = differences(saved, current)
    if not found:
        return
    where = Path(where).absolute()
    then, now = saved.get("source", "?"), current.get("source", "?")
    origin = f"then {then}, now {now}" if then != now else now
    raise DataChanged(
        f"Cannot resume the run in {where}: the data differs from what that run was trained on "
        f"({'; '.join(found)}; data: {origin}). Going on would train, test and record the "
        "model on other data than its first epochs. Restore the data the run was trained on "
        "and resume again, or start a new run on this data (without trainer.resume).",
        finished=bool(getattr(resumed, "finished", False)),
    )


class DataChanged(DataError):
    """``trainer.resume`` on other data: refused before anything is trained or written."""

    def __init__(self, message: str, finished: bool) -> None:
        super().__init__(message)
        self.finished = finished  # how the resumed run had ended (its status stays)


def tokenizer_identity(tokenizer: Any) -> dict[str, Any]:
    """What a checkpoint records of its tokenizer: the fingerprint of its fitted state."""
    return {"fingerprint": tokenizer.fingerprint(), "vocab_size": int(tokenizer.vocab_size)}


def tokenizer_for(
    config_node: Any, train: Any, resumed: Any, checkpoint_dir: Path, init_from: Any = None
) -> Any:
    """The run's tokenizer: fitted on ``train`` for a new run, or the language model's it
    starts from (``init_from``, an ``InitFrom``: its vocabulary carried over); for a
    resumed one, the one that run saved (its ``tokenizer_dir``, else ``tokenizer/`` beside
    its checkpoint), checked against the fingerprint the checkpoint recorded."""
    from pipeline.data.tokenize import TOKENIZER_CONFIG_FILE, fit_tokenizer, load_tokenizer

    if resumed is None and getattr(init_from, "tokenizer", None) is not None:
        print("tokenizer: the language model's (model.init_from), not fitted", flush=True)
        return init_from.tokenizer
    if resumed is None:
        return fit_tokenizer(config_node, train)
    recorded = ((getattr(resumed, "data", None) or {}).get("tokenizer") or {}).get("fingerprint")
    candidates = [Path(p) for p in (resumed.tokenizer_dir, checkpoint_dir / "tokenizer") if p]
    folder = next((p for p in candidates if (p / TOKENIZER_CONFIG_FILE).is_file()), None)
    if folder is None:
        tokenizer = fit_tokenizer(config_node, train)
        if recorded is not None and tokenizer.fingerprint() != recorded:
            raise DataError(
                f"Cannot resume: the tokenizer the run saved is gone "
                f"({' and '.join(map(str, candidates))} hold none) and fitting one again on "
                "this data gives another vocabulary. Restore the run's tokenizer/ folder, or "
                "start a new run (without trainer.resume)."
            )
        print("tokenizer: the run's folder is gone; fitted again on the same data", flush=True)
        return tokenizer
    try:
        tokenizer = load_tokenizer(folder)
    except DataError:
        raise
    except Exception as exc:  # a damaged file: say which folder
        raise DataError(
            f"Cannot resume: the run's tokenizer in {folder} cannot be read "
            f"({type(exc).__name__}: {exc}). Restore that folder, or start a new run."
        ) from None
    if recorded is not None and tokenizer.fingerprint() != recorded:
        raise DataError(
            f"Cannot resume: the tokenizer in {folder} is not the one the run was trained with "
            "(its vocabulary changed since). Restore the run's tokenizer/ folder, or start a "
            "new run (without trainer.resume)."
        )
    print(f"tokenizer: restored from {folder}", flush=True)
    return tokenizer
