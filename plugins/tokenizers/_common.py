"""Helpers shared by the built-in tokenizers: specials, the config file, fingerprints."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline.errors import DataError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
SPECIALS = [PAD, UNK]  # in id order: <pad> = 0, <unk> = 1

#: Written by every tokenizer's ``save`` beside its own files; ``load_tokenizer`` reads it.
CONFIG_FILE = "tokenizer_config.json"


def config_dict(name: str, config: Any) -> dict[str, Any]:
    """The config dataclass as a dict, with ``name`` set to the registry name."""
    values = dataclasses.asdict(config)
    values["name"] = name
    return values


def write_config(directory: str | Path, name: str, config: Any) -> Path:
    """Write ``tokenizer_config.json`` (registry name + config fields) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILE
    path.write_text(
        json.dumps(config_dict(name, config), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return path


def read_config(directory: str | Path, config_cls: type) -> Any:
    """Read ``tokenizer_config.json`` back into ``config_cls`` (unknown keys are ignored)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise DataError(
            f"No {CONFIG_FILE} in '{directory}': it is not a directory written by a "
            "tokenizer's save(). Point at the tokenizer folder of a run."
        )
    values = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: v for k, v in values.items() if k in known})


def fingerprint(name: str, version: str, config: Any, state: Any) -> str:
    """sha256 of the canonical JSON of (name, code version, config, fitted state)."""
    payload = {
        "name": name,
        "version": version,
        "config": config_dict(name, config),
        "state": state,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def not_fitted(name: str) -> RuntimeError:
    return RuntimeError(
        f"The '{name}' tokenizer is not fitted: call fit(texts) or load(directory) first."
    )
