"""The corpus data stage: load a plain-text corpus for language modelling (``task=lm``).

A corpus preset (``data=timemachine``, ``tiny_shakespeare``, ``ptb``, ``wikitext2``; every one
sets ``type: corpus``) describes its text twice, like the classification presets of
:mod:`pipeline.data.labelled`: where it lives on the Hugging Face Hub (``hub``/``hub_config``/
``hub_splits``/``text_column``) and how a local copy is laid out under a data root
(``local_splits``: split -> path relative to the root, e.g. ``ptb/ptb.train.txt.gz``).

Which source is used:

1. a local data root, ``data.dir`` or the environment variable ``PIPELINE_DATA_DIR``: the
   preset's ``local_splits`` under it, read with ``datasets.load_dataset("text", ...)`` (one row
   per line, line breaks dropped; gzipped files are read directly),
2. else the Hub. Hub rows are turned into lines the same way (a row's trailing newline is
   dropped and a row holding several lines becomes several rows), so both sources give one row
   per line. With no network and no local copy, a ``DataError`` names both ways out.

Every split then becomes one column, ``text`` (str), one row per line, in file order:

* ``clean=letters`` rewrites each line as d2l does:
  ``re.sub('[^A-Za-z]+', ' ', line).strip().lower()``,
* ``skip_empty_lines`` drops lines that are empty (or only whitespace) after cleaning,
* ``line_end`` is appended to every line: ``"\\n"`` for character corpora, so that the
  concatenated rows are the original file; ``""`` where lines are concatenated without a
  separator (d2l's time machine) or where the word tokenizer appends ``<eos>`` (PTB, WikiText).

Splits a source lacks are carved from the *end* of train, contiguously and unshuffled (``seed``
is not used): the layout is train | validation | test. ``validation_fraction`` (when there is
no validation split) and ``test_fraction`` (when there is no test split and it is set; ``None``
carves no test split) are fractions of the full train. ``carve_by=chars`` (the default) cuts
at a character offset of the concatenated text, so a cut may fall inside a line: that line is
split in two, its head ending train and its tail starting validation, and the character
stream is kept exactly. The cut is ``int(n * (1 - fraction))``, as nanoGPT's
``data[:int(n * 0.9)]``: Tiny Shakespeare gives exactly nanoGPT's 1,003,854 / 111,540
characters. ``carve_by=lines`` cuts between lines instead (for word-level corpora whose lines
are sentences). Last, ``max_train_lines`` / ``max_eval_lines`` keep the first n lines of
train / of validation and test (quick runs), and ``max_train_chars`` the first n characters
of train (d2l trains its time-machine model on ``corpus[:10000]``).

Everything is ``datasets.load_dataset`` + ``Dataset.map``/``select``, so the results are
Arrow-backed with stable fingerprints: two identical calls give equal ``_fingerprint``s, which
the tokenization cache relies on. The ``data`` config of a corpus is
:mod:`pipeline.data.corpus_config`.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.data.corpus_config import CorpusConfig, to_corpus_config
from pipeline.data.fingerprint import content_name
from pipeline.data.sources import (
    DATA_DIR_ENV,
    SPLITS,
    cache_fault,
    data_root,
    datasets_cache,
    hub_errors,
    offline_from_env,
)
from pipeline.errors import ConfigError, DataError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import datasets

#: Hub split names tried, in order, when ``hub_splits`` is empty.
_HUB_ALIASES = {"train": ["train"], "validation": ["validation", "valid", "dev"], "test": ["test"]}


@dataclass
class LoadedCorpus:
    """The corpus splits (column ``text``, one row per line) and where they came from."""

    splits: datasets.DatasetDict
    source: str


# --------------------------------------------------------------------------------------------
# Loading


def load_corpus(cfg: CorpusConfig | Mapping[str, Any] | Any, seed: int) -> LoadedCorpus:
    """Load train, validation and (where it exists) test: column ``text``, one row per line.

    ``cfg`` is a ``CorpusConfig``, a dict or the composed ``data`` node. ``seed`` is accepted
    for symmetry with ``load_data``; carving is contiguous, so nothing here is random.
    """
    del seed  # carving is contiguous and unshuffled
    import datasets

    config = to_corpus_config(cfg)
    if not config.local_splits and not config.hub:
        raise ConfigError(
            f"data={config.name} names no source: set data.local_splits (with data.dir or "
            f"{DATA_DIR_ENV}) or data.hub."
        )
    root = _data_root(config)
    if root is not None and config.local_splits:
        raw, source = _load_local(config, root)
    else:
        raw, source = _load_hub(config)

    splits = {split: _prepare(ds, config) for split, ds in raw.items()}
    if len(splits["train"]) == 0:
        raise DataError(f"The train split of data set '{config.name}' ({source}) has no lines.")
    splits = _carve(config, splits, source)
    splits = _first_lines(config, splits)
    if config.max_train_chars is not None:
        splits["train"] = _first_chars(splits["train"], config.max_train_chars)
    return LoadedCorpus(
        splits=datasets.DatasetDict({s: splits[s] for s in SPLITS if s in splits}),
        source=source,
    )


def _data_root(config: CorpusConfig) -> Path | None:
    hub = "the Hugging Face Hub" if config.hub else "nothing (this corpus has no Hub copy)"
    return data_root(
        config, lambda root: _layout(config, root), "Unsetting {origin} falls back to " + hub + "."
    )


def _layout(config: CorpusConfig, root: Path) -> str:
    if not config.local_splits:
        return f"{root}/{config.name}/..."
    return "; ".join(f"{split}: {root / path}" for split, path in config.local_splits.items())


def _load_local(config: CorpusConfig, root: Path) -> tuple[dict[str, Any], str]:
    import datasets

    raw: dict[str, Any] = {}
    wheres: list[str] = []
    for split, path in config.local_splits.items():
        pattern = root / path
        files = sorted(glob.glob(str(pattern)))
        if not files:
            folder = pattern.parent
            missing = folder if not folder.is_dir() else pattern
            fallback = (
                "unset both to use the Hugging Face Hub"
                if config.hub
                else "this corpus has no Hub copy"
            )
            raise DataError(
                f"Corpus '{config.name}' has no {split} data in {root}: {missing} is missing. "
                f"The expected layout is {_layout(config, root)} (see shared/data/SOURCES.md). "
                f"Fix data.dir / {DATA_DIR_ENV}, or {fallback}."
            )
        try:
            raw[split] = datasets.load_dataset(
                "text",
                content_name(files),  # cached by content: an edited file may keep its mtime
                data_files=files,
                split="train",
                keep_linebreaks=False,
                cache_dir=datasets_cache(config),
            )
        except Exception as e:  # an unreadable file: name it, keep the cause
            unreadable = DataError(f"Cannot read {pattern} as text: {type(e).__name__}: {e}")
            raise cache_fault(e, config) or unreadable from e
        wheres.append(str(pattern))
    return raw, "local:" + ", ".join(wheres)


def _no_source_error(config: CorpusConfig, why: str) -> DataError:
    return DataError(
        f"Cannot load corpus '{config.name}': {why} Either use a local copy: set "
        f"{DATA_DIR_ENV}=/path/to/data or pass data.dir=/path/to/data, laid out as "
        f"{_layout(config, Path('<dir>'))}; or connect to the network so the corpus can be "
        "downloaded from the Hugging Face Hub (and unset HF_HUB_OFFLINE / HF_DATASETS_OFFLINE if "
        "set)."
    )


def _load_hub(config: CorpusConfig) -> tuple[dict[str, Any], str]:
    import datasets

    if not config.hub:
        extra = ""
        if config.origin:
            first = next(iter(config.local_splits.values()), f"{config.name}/...")
            extra = f" Download it from {config.origin} and save it as <dir>/{first}."
        raise DataError(
            f"Corpus '{config.name}' has no copy on the Hugging Face Hub and no local copy is "
            f"configured. Set {DATA_DIR_ENV}=/path/to/data or pass data.dir=/path/to/data, laid "
            f"out as {_layout(config, Path('<dir>'))}.{extra}"
        )
    cache_dir = datasets_cache(config)
    where = config.hub + (f"/{config.hub_config}" if config.hub_config else "")
    raw: dict[str, Any] = {}
    try:
        with offline_from_env():
            if config.hub_splits:
                for split, name in config.hub_splits.items():
                    raw[split] = datasets.load_dataset(
                        config.hub, config.hub_config, split=name, cache_dir=cache_dir
                    )
            else:
                found = datasets.load_dataset(config.hub, config.hub_config, cache_dir=cache_dir)
                for split, names in _HUB_ALIASES.items():
                    for name in names:
                        if name in found:
                            raw[split] = found[name]
                            break
                if "train" not in raw:
                    raise DataError(
                        f"The Hub dataset {where} has no train split (it has "
                        f"{', '.join(found)}); set data.hub_splits.train=<name>."
                    )
    except hub_errors() as e:
        raise _no_source_error(
            config,
            f"no local copy is configured and the Hugging Face Hub dataset '{config.hub}' could "
            f"not be loaded ({type(e).__name__}: {e}).",
        ) from e
    return {split: _hub_lines(ds, config, where) for split, ds in raw.items()}, f"hub:{where}"


def _hub_lines(dataset: Any, config: CorpusConfig, where: str) -> Any:
    """One row per line, column ``text``, like a local file read by the ``text`` builder."""
    import datasets

    columns = dataset.column_names
    if config.text_column not in columns:
        raise DataError(
            f"The text column '{config.text_column}' is not in hub:{where}; its columns are "
            f"{', '.join(columns)}. {did_you_mean(config.text_column, columns)} Set "
            "data.text_column=... to the right column."
        )
    return dataset.map(
        _split_rows,
        batched=True,
        remove_columns=columns,
        features=datasets.Features({"text": datasets.Value("string")}),
        fn_kwargs={"column": config.text_column},
        desc="Splitting into lines",
    )


def _split_rows(batch: dict[str, list], column: str) -> dict[str, list]:
    lines: list[str] = []
    for text in batch[column]:
        text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
        if text.endswith("\n"):
            text = text[:-1]
        lines.extend(text.split("\n"))
    return {"text": lines}


# --------------------------------------------------------------------------------------------
# Cleaning, carving, first lines


def _prepare(dataset: Any, config: CorpusConfig) -> Any:
    """Clean, drop empty lines and append ``line_end`` in one batched ``map``."""
    import datasets

    if config.clean == "none" and not config.skip_empty_lines and not config.line_end:
        return dataset
    return dataset.map(
        _clean_lines,
        batched=True,
        remove_columns=dataset.column_names,
        features=datasets.Features({"text": datasets.Value("string")}),
        fn_kwargs={
            "clean": config.clean,
            "skip_empty": config.skip_empty_lines,
            "line_end": config.line_end,
        },
        desc="Preparing lines",
    )


_NOT_LETTERS = re.compile("[^A-Za-z]+")


def _clean_lines(
    batch: dict[str, list], clean: str, skip_empty: bool, line_end: str
) -> dict[str, list]:
    lines = batch["text"]
    if clean == "letters":  # d2l's read_time_machine
        lines = [_NOT_LETTERS.sub(" ", line).strip().lower() for line in lines]
    if skip_empty:
        lines = [line for line in lines if line.strip()]
    return {"text": [line + line_end for line in lines]}


def _cut(n: int, fraction: float) -> int:
    """``int(n * fraction)``, as nanoGPT, robust to float error at exact integers."""
    return int(n * fraction + 1e-9)


def _carve(config: CorpusConfig, splits: dict[str, Any], source: str) -> dict[str, Any]:
    """Hold out validation and/or test from the end of train (contiguous), as train | val | test."""
    carve_validation = "validation" not in splits
    carve_test = "test" not in splits and config.test_fraction is not None
    if not (carve_validation or carve_test):
        return splits
    train = splits["train"]
    val_fraction = config.validation_fraction if carve_validation else 0.0
    test_fraction = (config.test_fraction or 0.0) if carve_test else 0.0
    if config.carve_by == "chars":
        import numpy as np
        import pyarrow.compute as pc

        column = train.with_format("arrow")[:]["text"]
        lengths = pc.utf8_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        total = int(ends[-1]) if len(ends) else 0
        unit = "characters"
    else:
        starts = ends = None
        total = len(train)
        unit = "lines"
    train_end = _cut(total, 1.0 - (val_fraction + test_fraction))
    val_end = _cut(total, 1.0 - test_fraction) if carve_test else total
    pieces = {"train": (0, train_end)}
    if carve_validation:
        pieces["validation"] = (train_end, val_end)
    if carve_test:
        pieces["test"] = (val_end, total)
    for split, (a, b) in pieces.items():
        if b - a < 1:
            raise DataError(
                f"The train split of '{config.name}' ({source}) has {total} {unit}: too few to "
                f"hold out {' and '.join(s for s in pieces if s != 'train')} from it (the {split} "
                "part would be empty). Provide more text or raise the fractions."
            )
    result = dict(splits)
    for split, (a, b) in pieces.items():
        last = b == total
        if starts is None:
            result[split] = train.select(range(a, b))
        else:
            result[split] = _char_slice(train, starts, ends, a, b, last)
    return result


def _char_slice(dataset: Any, starts: Any, ends: Any, a: int, b: int, last: bool) -> Any:
    """The rows covering characters [a, b) of the concatenated text, the edge rows trimmed.

    A row belongs to the piece its first character is in; a row straddling ``a`` is split, its
    tail opening this piece. Empty rows go with the piece where they start, so no row is lost.
    """
    import numpy as np

    first = int(np.searchsorted(starts, a, side="left"))
    if first > 0 and ends[first - 1] > a:  # a line straddles the cut
        first -= 1
    stop = len(starts) if last else int(np.searchsorted(starts, b, side="left"))
    piece = dataset.select(range(first, stop))
    trims: dict[int, list[int | None]] = {}
    if starts[first] < a:
        trims[0] = [int(a - starts[first]), None]
    if not last and ends[stop - 1] > b:
        head = trims.get(stop - 1 - first, [0, None])[0]
        trims[stop - 1 - first] = [head, int(b - starts[stop - 1])]
    if not trims:
        return piece
    return piece.map(
        _trim_rows,
        batched=True,
        with_indices=True,
        fn_kwargs={"trims": trims},
        desc="Cutting at the split point",
    )


def _trim_rows(
    batch: dict[str, list], indices: list[int], trims: dict[int, list[int | None]]
) -> dict[str, list]:
    texts = list(batch["text"])
    for i, index in enumerate(indices):
        if index in trims:
            lo, hi = trims[index]
            texts[i] = texts[i][lo:hi]
    return {"text": texts}


def _first_lines(config: CorpusConfig, splits: dict[str, Any]) -> dict[str, Any]:
    limits = {
        "train": config.max_train_lines,
        "validation": config.max_eval_lines,
        "test": config.max_eval_lines,
    }
    result = dict(splits)
    for split, dataset in splits.items():
        limit = limits[split]
        if limit is not None and limit < len(dataset):
            result[split] = dataset.select(range(limit))
    return result


def _first_chars(dataset: Any, limit: int) -> Any:
    """The rows holding the first ``limit`` characters of the concatenated text."""
    import numpy as np
    import pyarrow.compute as pc

    column = dataset.with_format("arrow")[:]["text"]
    lengths = pc.utf8_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    ends = np.cumsum(lengths)
    if not len(ends) or limit >= ends[-1]:
        return dataset
    return _char_slice(dataset, ends - lengths, ends, 0, limit, last=False)
