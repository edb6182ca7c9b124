"""Stage: fit the tokenizer on the train split, then tokenize every split once (cached).

``tokenize`` runs ``Dataset.map(batched=True)`` with an explicit ``new_fingerprint`` made
of the input split's fingerprint, the tokenizer's fingerprint, ``max_length`` (and the
truncation side, when it is ``left``) and ``TOKENIZE_VERSION``. For a data set backed by
cache files (``load_dataset``), a second identical run finds ``cache-<fingerprint>.arrow``
beside them and tokenizes nothing. In-memory data sets (``Dataset.from_dict``) work the
same way but are never cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import __version__
from pipeline.contracts import Tokenizer
from pipeline.errors import ConfigError, DataError
from pipeline.registry import tokenizers, validate

if TYPE_CHECKING:  # datasets is imported lazily (it costs ~0.8 s)
    from datasets import Dataset, DatasetDict

#: Part of every cache key: bump it whenever a change here changes the tokenized output.
TOKENIZE_VERSION = "1"
#: Written by every tokenizer's ``save``: ``{"name": <registry name>, <config fields>...}``.
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TEXT_COLUMN = "text"
#: Which end of a text longer than ``max_length`` is cut (as Hugging Face's
#: ``truncation_side``): ``right`` keeps its first tokens, ``left`` its last ones.
TRUNCATION_SIDES = ("right", "left")


def truncate(ids: Sequence[Any], max_length: int | None, side: str = "right") -> Sequence[Any]:
    """``ids`` cut to ``max_length`` items on ``side`` (None: all of them)."""
    if max_length is None or len(ids) <= max_length:
        return ids
    return ids[len(ids) - max_length :] if side == "left" else ids[:max_length]


@dataclass
class TokenizedData:
    """The tokenized splits and what it cost to get them."""

    splits: DatasetDict  # each split: input_ids (list[int32]), length (int32), label if present
    rows_tokenized: int  # rows the tokenizer actually ran on: 0 on a full cache hit
    seconds: float
    from_cache: dict[str, bool] = field(default_factory=dict)  # per split
    max_length: int | None = None

    @property
    def cached(self) -> bool:
        """True when no row had to be tokenized."""
        return self.rows_tokenized == 0


# -- fitting ---------------------------------------------------------------------------


def tokenizer_config(config_node: Any) -> Any:
    """The validated config dataclass for a ``tokenizer`` node (DictConfig, dict or dataclass)."""
    if dataclasses.is_dataclass(config_node) and not isinstance(config_node, type):
        config = config_node
        if not getattr(config, "name", ""):
            matches = [e.name for e in tokenizers.entries() if e.config is type(config)]
            if len(matches) != 1:
                raise ConfigError(
                    f"tokenizer config {type(config).__name__} has no name and matches "
                    f"{len(matches)} registered tokenizers; set its name."
                )
            config = dataclasses.replace(config, name=matches[0])
        entry = tokenizers.get(config.name)  # unknown name: a ConfigError listing the known
        if not isinstance(config, entry.config):
            raise ConfigError(
                f"tokenizer '{config.name}' takes a {entry.config.__name__}, "
                f"got a {type(config).__name__}."
            )
        validate(config, prefix=tokenizers.group)
        return config
    return tokenizers.config_from(config_node)


def _texts(train_texts: Any) -> Iterator[str]:
    """Strings from a list/iterable of strings, or from a ``datasets.Dataset``'s text column."""
    if hasattr(train_texts, "column_names") and hasattr(train_texts, "iter"):
        if TEXT_COLUMN not in train_texts.column_names:
            raise DataError(
                f"The train split has no '{TEXT_COLUMN}' column (it has "
                f"{train_texts.column_names}); the tokenizer is fitted on '{TEXT_COLUMN}'."
            )
        for batch in train_texts.select_columns([TEXT_COLUMN]).iter(batch_size=1000):
            for text in batch[TEXT_COLUMN]:
                yield "" if text is None else text
        return
    if isinstance(train_texts, (str, Mapping)):
        raise TypeError(
            "fit_tokenizer wants the train texts (a list or the train Dataset), not "
            f"{type(train_texts).__name__}"
        )
    for text in train_texts:
        yield "" if text is None else text


def fit_tokenizer(config_node: Any, train_texts: Iterable[str] | Dataset) -> Tokenizer:
    """Build the tokenizer named by ``config_node`` and fit it on the train texts only.

    When the texts are a ``datasets.Dataset`` backed by cache files, the fitted tokenizer is
    cached beside them, keyed by the split's fingerprint and the tokenizer's config, so a
    second run with the same data and settings loads it instead of fitting again.
    """
    config = tokenizer_config(config_node)
    cached = _fitted_cache(config, train_texts)
    if cached is not None and (cached / TOKENIZER_CONFIG_FILE).is_file():
        try:
            return load_tokenizer(cached)
        except Exception:  # an unreadable cache entry: fit again and replace it
            shutil.rmtree(cached, ignore_errors=True)
    tokenizer = tokenizers.get(config.name).build(config)
    tokenizer.fit(_texts(train_texts))
    if cached is not None:
        _store(tokenizer, cached)
    return tokenizer


def _fitted_cache(config: Any, train_texts: Any) -> Path | None:
    """Where the tokenizer fitted on this split with this config is cached, if it can be."""
    fingerprint = getattr(train_texts, "_fingerprint", None)
    files = getattr(train_texts, "cache_files", None)
    if not fingerprint or not files:
        return None
    entry = tokenizers.get(config.name)
    key = json.dumps(
        {
            "split": fingerprint,
            "config": dataclasses.asdict(config),
            "class": f"{entry.cls.__module__}.{entry.cls.__qualname__}",
            "version": __version__,
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Path(files[0]["filename"]).parent / "seqpipe-tokenizers" / digest


def _store(tokenizer: Tokenizer, folder: Path) -> None:
    """Save into a temporary folder, then rename: a reader never sees half a tokenizer."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".fitting-", dir=folder.parent))
    except OSError:  # a read-only cache: nothing is cached
        return
    try:
        tokenizer.save(tmp)
        os.replace(tmp, folder)
    except OSError:  # another process stored it first
        shutil.rmtree(tmp, ignore_errors=True)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load a tokenizer written by its ``save``: its registry name picks the class."""
    path = Path(directory) / TOKENIZER_CONFIG_FILE
    if not path.is_file():
        raise DataError(
            f"No {TOKENIZER_CONFIG_FILE} in '{directory}': it is not a directory written by a "
            "tokenizer's save(). Point at the tokenizer folder of a run."
        )
    name = json.loads(path.read_text(encoding="utf-8"))["name"]
    if name not in tokenizers:  # e.g. serving, where nothing has loaded the plugins yet
        from pipeline.plugins import load_plugins

        load_plugins()
    return tokenizers.get(name).cls.load(directory)


# -- tokenizing ------------------------------------------------------------------------


class _Counter:
    """Counts the rows the map function really sees (none when datasets uses its cache)."""

    def __init__(self) -> None:
        self.rows = 0


def cache_fingerprint(
    dataset_fingerprint: str,
    tokenizer: Tokenizer,
    max_length: int | None,
    truncation_side: str = "right",
) -> str:
    """The ``new_fingerprint`` of a tokenized split (64 hex chars at most, as datasets wants)."""
    parts = [TOKENIZE_VERSION, dataset_fingerprint, tokenizer.fingerprint(), str(max_length)]
    if truncation_side != "right":  # the right side's keys stay what they always were
        parts.append(truncation_side)
    key = "|".join(parts)
    return "tokenize-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def _output_features(features: Any) -> Any:
    import datasets

    list_of = getattr(datasets, "List", None) or datasets.Sequence
    out = datasets.Features({k: v for k, v in features.items() if k != TEXT_COLUMN})
    out["input_ids"] = list_of(datasets.Value("int32"))
    out["length"] = datasets.Value("int32")
    return out


def _tokenize_split(
    name: str,
    ds: Dataset,
    tokenizer: Tokenizer,
    max_length: int | None,
    truncation_side: str,
    batch_size: int,
) -> tuple[Dataset, int]:
    import datasets

    if TEXT_COLUMN not in ds.column_names:
        raise DataError(f"Split '{name}' has no '{TEXT_COLUMN}' column (it has {ds.column_names}).")
    features = _output_features(ds.features)
    if len(ds) == 0:  # datasets' map skips empty tables and would lose the new columns
        return datasets.Dataset.from_dict({k: [] for k in features}, features=features), 0

    counter = _Counter()

    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = ["" if t is None else t for t in batch[TEXT_COLUMN]]
        counter.rows += len(texts)
        ids = [truncate(row, max_length, truncation_side) for row in tokenizer.encode_batch(texts)]
        return {"input_ids": ids, "length": [len(row) for row in ids]}

    fingerprint = getattr(ds, "_fingerprint", None)
    out = ds.map(
        encode,
        batched=True,
        batch_size=batch_size,
        remove_columns=[TEXT_COLUMN],
        features=features,
        new_fingerprint=(
            cache_fingerprint(fingerprint, tokenizer, max_length, truncation_side)
            if fingerprint
            else None
        ),
        desc=f"Tokenizing {name}",
    )
    return out, counter.rows


def tokenize(
    splits: DatasetDict,
    tokenizer: Tokenizer,
    max_length: int | None,
    *,
    truncation_side: str = "right",
    batch_size: int = 1000,
) -> TokenizedData:
    """Add ``input_ids`` (at most ``max_length`` ids: the first ones, or the last ones with
    ``truncation_side="left"``) and ``length``; drop ``text``.

    Other columns (``label``) are kept. ``max_length=None`` keeps every token.
    """
    import datasets

    if max_length is not None and (isinstance(max_length, bool) or max_length < 1):
        raise ConfigError(f"max_length={max_length!r} is too small: it must be >= 1.")
    if truncation_side not in TRUNCATION_SIDES:
        raise ConfigError(
            f"data.truncation_side={truncation_side!r}: use right (keep each text's first "
            "max_length tokens) or left (keep its last ones)."
        )
    start = time.perf_counter()
    out: dict[str, Any] = {}
    from_cache: dict[str, bool] = {}
    total = 0
    for name, ds in splits.items():
        out[name], rows = _tokenize_split(
            name, ds, tokenizer, max_length, truncation_side, batch_size
        )
        from_cache[name] = rows == 0 and len(ds) > 0
        total += rows
    return TokenizedData(
        splits=datasets.DatasetDict(out),
        rows_tokenized=total,
        seconds=time.perf_counter() - start,
        from_cache=from_cache,
        max_length=max_length,
    )
