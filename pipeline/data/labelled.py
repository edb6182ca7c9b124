"""The data stage: load a labelled text data set into train / validation / test.

One code path serves every source. A preset (``data=imdb``, ``sst2``, ``mr``, ``trec``,
``ag_news``) describes its data twice: where it lives on the Hugging Face Hub
(``hub``/``hub_splits``) and how a local copy is laid out under a data root
(``local_splits``, paths relative to the root). ``data=files`` reads the user's own files
(``data.train=...``). Everything goes through ``datasets.load_dataset`` (the ``json``, ``csv``,
``parquet`` and ``text`` builders for local files), so the results are Arrow-backed datasets
with stable fingerprints: two identical calls give datasets with equal ``_fingerprint``, which
the tokenization cache relies on. The ``data`` config is :mod:`pipeline.data.data_config`;
the rows are made uniform (below: columns, labels, carving) by :mod:`pipeline.data.normalise`.

Which source is used:

1. ``data.train`` / ``data.validation`` / ``data.test`` set (``data=files``): those files,
   relative to the current working directory.
2. else a local data root, ``data.dir`` or the environment variable ``PIPELINE_DATA_DIR``:
   the preset's ``local_splits`` under it (``$PIPELINE_DATA_DIR/<preset>/...``).
3. else the Hub (``hub``/``hub_splits``). With no network and no local copy, a ``DataError``
   names both ways out.

Then, in this order (all seeded by ``seed``):

* rows are filtered by ``keep`` (MR: its ``fold`` column),
* every split becomes exactly two columns, ``text`` (str, stripped) and ``label`` (int64),
  the label being an id into ``LoadedData.labels``: the preset's ``label_names`` in their order,
  or else the labels seen in train, sorted (integers numerically, strings alphabetically),
* a missing validation split is carved from train (``validation_fraction``); a missing test
  split too (``test_fraction``, default: the same fraction). Both fractions are of the full
  train split, so AG News' offline copy (its official test split only) becomes 80/10/10,
* ``max_train_samples`` / ``max_eval_samples`` subsample train and validation + test.

Split choices of the presets (also in their YAML files):

* ``imdb``: train 25,000 -> 22,500 train + 2,500 validation (carved, seeded); test 25,000.
* ``sst2``: GLUE phrase-level train (67,349), GLUE dev as validation (872), and the classic
  1,821-sentence test (Kim 2014; Hub ``SetFit/sst2``).
* ``mr``: locally ``mr/mr.tsv`` with its 10 stratified folds: fold 0 is test (1,068),
  fold 1 validation (1,066), folds 2-9 train (8,528). The Hub's ``rotten_tomatoes`` has its own
  8,530 / 1,066 / 1,066 split.
* ``trec``: 5,452 train (validation carved from it) / 500 test, 6 coarse classes.
* ``ag_news``: offline only the official 7,600-row test split exists; it is split (seeded)
  80/10/10 into train / validation / test (6,080 / 760 / 760). From the Hub, the official
  120,000 train (validation carved from it) and 7,600 test are used, so numbers from the two
  sources are not comparable.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.data.data_config import FORMAT_HELP, FORMATS, DataConfig, SplitSource, to_config
from pipeline.data.fingerprint import content_name, files_digest
from pipeline.data.normalise import (
    RawSplit,
    carve,
    check_train_texts,
    encode,
    label_names,
    normalise,
    subsample,
)
from pipeline.data.sources import (
    DATA_DIR_ENV,
    SPLITS,
    cache_fault,
    data_root,
    datasets_cache,
    hub_errors,
    offline_from_env,
    quiet_datasets,
    user_file,
)
from pipeline.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

#: file extension (after an optional ``.gz``) -> format
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
}


@dataclass
class LoadedData:
    """The loaded splits, the label names (id i <-> labels[i]) and where they came from."""

    splits: datasets.DatasetDict
    labels: list[str]
    source: str
    carved: list[str] = dataclasses.field(default_factory=list)  # splits held out of train


# --------------------------------------------------------------------------------------------
# Loading


def load_data(
    cfg: DataConfig | Mapping[str, Any] | Any, seed: int, *, whole_files: bool = False
) -> LoadedData:
    """Load train / validation / test with columns ``text`` (str) and ``label`` (int64).

    ``cfg`` is a ``DataConfig``, a dict or the composed ``data`` node. See the module docstring
    for which source is used, how labels are numbered and how missing splits are carved
    (AG News offline: its only split, the official test set, becomes 80/10/10).
    ``whole_files=True`` (``evaluate`` scoring a model on the user's files): no split is
    carved, the splits are those the files name, data.train is not required and one label
    is enough.
    """
    from pipeline.data.synthetic import is_generated, long_lag_splits

    if is_generated(cfg):  # data=long_lag: made from the seed, nothing to read
        splits, labels, source = long_lag_splits(cfg, seed)
        return LoadedData(splits=splits, labels=labels, source=source)
    config = to_config(cfg)
    user_files = [s for s in SPLITS if getattr(config, s)]
    if user_files:
        if "train" not in user_files and not whole_files:
            raise ConfigError(
                f"data.{user_files[0]} is set but data.train is not: your own data needs at least "
                "data.train=/path/to/train.csv (validation and test are carved from it if absent)."
            )
        raw, source = _load_user_files(config)
    elif config.hub is None and not config.local_splits and not config.hub_splits:
        raise ConfigError(
            f"data={config.name} needs your training file: data.train=/path/to/train.csv "
            f"({FORMAT_HELP}, with a text and a label column; optional data.validation=... and "
            "data.test=...). Or choose a preset such as data=imdb."
        )
    else:
        root = _data_root(config)
        if root is not None and config.local_splits:
            raw, source = _load_local(config, root)
        else:
            raw, source = _load_hub(config)

    texts = {split: normalise(r, config.label_map) for split, r in raw.items()}
    if "train" in texts:
        check_train_texts(texts["train"], raw["train"])
    labels = label_names(config, texts, raw, min_labels=1 if whole_files else 2)
    index = {name: i for i, name in enumerate(labels)}
    splits = {split: encode(ds, index) for split, ds in texts.items()}
    carved = [] if whole_files else [s for s in ("validation", "test") if s not in splits]
    if carved:
        splits = carve(config, splits, seed)
    splits = subsample(config, splits, seed)

    import datasets

    return LoadedData(
        splits=datasets.DatasetDict({s: splits[s] for s in SPLITS if s in splits}),
        labels=labels,
        source=source,
        carved=carved,
    )


def _data_root(config: DataConfig) -> Path | None:
    return data_root(
        config,
        lambda root: _layout(config, root),
        "Unset {origin} to download from the Hugging Face Hub.",
    )


def _layout(config: DataConfig, root: Path) -> str:
    if not config.local_splits:
        return f"{root}/{config.name}/..."
    return "; ".join(
        f"{split}: {root / str(source.path)}" for split, source in config.local_splits.items()
    )


def _load_local(config: DataConfig, root: Path) -> tuple[dict[str, RawSplit], str]:
    raw: dict[str, RawSplit] = {}
    wheres = []
    for split, source in config.local_splits.items():
        if not source.path:
            raise ConfigError(f"data.local_splits.{split}.path is required.")
        pattern = root / source.path
        files = sorted(glob.glob(str(pattern)))
        if not files:
            folder = pattern.parent
            missing = folder if not folder.is_dir() else pattern
            raise DataError(
                f"Data set '{config.name}' has no {split} data in {root}: {missing} is missing. "
                f"The expected layout is {_layout(config, root)} (see shared/data/SOURCES.md). "
                f"Fix data.dir / {DATA_DIR_ENV}, or unset both to use the Hugging Face Hub."
            )
        fmt = source.format or config.format or _format_of(files[0])
        where = str(pattern)
        hint = f"data.local_splits.{split}"
        dataset = _read_files(files, fmt, source.column_names, config, where)
        raw[split] = _raw(dataset, where, source, config, hint)
        if where not in wheres:
            wheres.append(where)
    return raw, "local:" + ", ".join(wheres)


def _load_user_files(config: DataConfig) -> tuple[dict[str, RawSplit], str]:
    raw: dict[str, RawSplit] = {}
    wheres = []
    for split in SPLITS:
        value = getattr(config, split)
        if not value:
            continue
        path = user_file(split, value)
        fmt = config.format or _format_of(str(path))
        if fmt == "text":
            raise DataError(
                f"data.{split}={value}: a .txt file holds one text per line and no labels, but "
                f"classification needs a label per text. Use a file that carries labels: CSV, "
                f"TSV, JSON Lines or Parquet with a '{config.label_column}' column "
                "(data.label_column=...)."
            )
        dataset = _read_files([str(path)], fmt, [], config, str(path))
        source = SplitSource()
        raw[split] = _raw(dataset, str(path), source, config, "data")
        wheres.append(str(path))
    return raw, "local:" + ", ".join(wheres)


def _format_of(path: str) -> str:
    name = path[:-3] if path.endswith(".gz") else path
    suffix = Path(name).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise DataError(
            f"Cannot tell the format of {path} from its extension '{suffix}'. Supported: "
            f"{FORMAT_HELP}; or set data.format= one of {', '.join(FORMATS)}."
        )
    return _EXTENSIONS[suffix]


def _read_files(
    files: list[str], fmt: str, column_names: list[str], config: DataConfig, where: str
) -> Any:
    """Read local files through ``datasets.load_dataset`` (one split named ``train``)."""
    import datasets

    kwargs: dict[str, Any] = {}
    builder = fmt
    if fmt in ("csv", "tsv"):
        builder = "csv"
        kwargs["keep_default_na"] = False  # texts such as "NA" or "null" stay texts
        if fmt == "tsv":  # IANA TSV: tab-separated, no quoting (texts may contain '"')
            kwargs.update(delimiter="\t", quoting=3)  # 3 = csv.QUOTE_NONE
        if column_names:
            kwargs["column_names"] = list(column_names)
    empty = [f for f in files if os.path.getsize(f) == 0]
    if empty:
        raise DataError(
            f"{empty[0]} is empty (0 bytes). It needs a header row naming the "
            f"'{config.text_column}' and '{config.label_column}' columns, then one example per "
            "row; check the path, or write the file again."
        )
    if fmt == "parquet":  # Parquet is compressed inside; datasets cannot read a gzipped one
        files = [_gunzipped(f, config) if f.endswith(".gz") else f for f in files]
    try:
        with quiet_datasets():
            return datasets.load_dataset(
                builder,
                content_name(files),  # cached by content: an edited file may keep its mtime
                data_files=files,
                split="train",
                cache_dir=datasets_cache(config),
                **kwargs,
            )
    except Exception as e:  # a parser error: name the file, keep the cause
        raise cache_fault(e, config) or _read_error(e, where, fmt) from e


def _read_error(error: BaseException, where: str, fmt: str) -> DataError:
    """One sentence for a file that ``datasets`` cannot read: the root cause, not its wrapper
    (``DatasetGenerationError: An error occurred while generating the dataset``)."""
    cause, seen = error, set()
    while not isinstance(cause, UnicodeDecodeError) and id(cause) not in seen:
        seen.add(id(cause))
        nested = cause.__cause__ or cause.__context__
        if nested is None:
            break
        cause = nested
    if isinstance(cause, UnicodeDecodeError):
        return DataError(
            f"{where} is not UTF-8 text: byte 0x{cause.object[cause.start]:02x} at position "
            f"{cause.start} is invalid ({cause.encoding}: {cause.reason}). Save the file as "
            "UTF-8, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv."
        )
    text = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else ""
    if "corresponds to no data" in text:
        return DataError(
            f"{where} has no rows (at most a header). Every split needs examples: fill the file, "
            "or leave this split out (validation and test are carved from train if absent)."
        )
    return DataError(
        f"Cannot read {where} as {fmt} ({type(cause).__name__}: {text}). Check that the file "
        f"is {fmt.upper()}, or set data.format= one of {', '.join(FORMATS)}."
    )


def _gunzipped(path: str, config: DataConfig) -> str:
    """A decompressed copy of a gzipped file, in the cache, named by its content."""
    import datasets

    folder = Path(datasets_cache(config) or datasets.config.HF_DATASETS_CACHE) / "pipeline_gunzip"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{files_digest([path])[:16]}-{Path(path).name[:-3]}"
    if not target.exists():
        partial = target.with_name(target.name + f".{os.getpid()}.tmp")
        with gzip.open(path, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(partial, target)
    return str(target)


def _raw(dataset: Any, where: str, source: SplitSource, config: DataConfig, hint: str) -> RawSplit:
    text_columns = list(source.join_columns) or [source.text_column or config.text_column]
    label_column = source.label_column or config.label_column
    return RawSplit(dataset, where, text_columns, label_column, dict(source.keep), hint)


def _load_hub(config: DataConfig) -> tuple[dict[str, RawSplit], str]:
    import datasets

    if not config.hub and not all(s.path for s in config.hub_splits.values()):
        raise DataError(
            f"Data set '{config.name}' has no local copy and names no Hugging Face Hub dataset. "
            f"Set {DATA_DIR_ENV}=/path/to/data or data.dir=/path/to/data (laid out as "
            f"{_layout(config, Path('<dir>'))}), or set data.hub=<dataset id>."
        )
    raw: dict[str, RawSplit] = {}
    ids: list[str] = []
    cache_dir = datasets_cache(config)
    current = config.hub or ""
    try:
        with offline_from_env():
            if config.hub_splits:
                for split, source in config.hub_splits.items():
                    current = source.path or config.hub or ""
                    name = source.config or config.hub_config
                    dataset = datasets.load_dataset(
                        current, name, split=source.split or split, cache_dir=cache_dir
                    )
                    where = f"hub:{current}" + (f"/{name}" if name else "")
                    where += f" [{source.split or split}]"
                    raw[split] = _raw(dataset, where, source, config, f"data.hub_splits.{split}")
                    if current not in ids:
                        ids.append(current)
            else:
                current = config.hub or ""
                found = datasets.load_dataset(current, config.hub_config, cache_dir=cache_dir)
                aliases = {"train": ["train"], "validation": ["validation", "valid", "dev"]}
                aliases["test"] = ["test"]
                for split, names in aliases.items():
                    for name in names:
                        if name in found:
                            where = f"hub:{current} [{name}]"
                            raw[split] = _raw(found[name], where, SplitSource(), config, "data")
                            break
                if "train" not in raw:
                    raise DataError(
                        f"The Hub dataset {current} has no train split (it has "
                        f"{', '.join(found)}); set data.hub_splits.train.split=<name>."
                    )
                ids.append(current)
    except hub_errors() as e:
        raise DataError(
            f"Cannot load data set '{config.name}': no local copy is configured and the Hugging "
            f"Face Hub dataset '{current}' could not be loaded ({type(e).__name__}: {e}). Either "
            f"use a local copy: set {DATA_DIR_ENV}=/path/to/data or pass data.dir=/path/to/data, "
            f"laid out as {_layout(config, Path('<dir>'))}; or connect to the network so the "
            "dataset can be downloaded from the Hugging Face Hub (and unset HF_HUB_OFFLINE / "
            "HF_DATASETS_OFFLINE if set)."
        ) from e
    return raw, "hub:" + ", ".join(ids)
