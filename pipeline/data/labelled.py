"""The data stage: load a labelled text data set into train / validation / test.

One code path serves every source. A preset (``data=imdb``, ``sst2``, ``mr``, ``trec``,
``ag_news``) describes its data twice: where it lives on the Hugging Face Hub
(``hub``/``hub_splits``) and how a local copy is laid out under a data root
(``local_splits``, paths relative to the root). ``data=files`` reads the user's own files
(``data.train=...``). Everything goes through ``datasets.load_dataset`` (the ``json``, ``csv``,
``parquet`` and ``text`` builders for local files), so the results are Arrow-backed datasets
with stable fingerprints: two identical calls give datasets with equal ``_fingerprint``, which
the tokenization cache relies on.

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
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.data.data_config import FORMAT_HELP, FORMATS, DataConfig, SplitSource, to_config
from pipeline.data.fingerprint import content_name, files_digest
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
from pipeline.errors import ConfigError, DataError, did_you_mean

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


@dataclass
class _Raw:
    """One raw split before normalisation, with what error messages need to name it."""

    dataset: Any  # datasets.Dataset
    where: str  # a path or hub id, for messages
    text_columns: list[str]
    label_column: str
    keep: dict[str, list[Any]]
    column_hint: str  # the config key that names the columns, for messages


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

    texts = {split: _normalise(r, config.label_map) for split, r in raw.items()}
    if "train" in texts:
        _check_train_texts(texts["train"], raw["train"])
    labels = _label_names(config, texts, raw, min_labels=1 if whole_files else 2)
    index = {name: i for i, name in enumerate(labels)}
    splits = {split: _encode(ds, index) for split, ds in texts.items()}
    carved = [] if whole_files else [s for s in ("validation", "test") if s not in splits]
    if carved:
        splits = _carve(config, splits, seed)
    splits = _subsample(config, splits, seed)

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


def _load_local(config: DataConfig, root: Path) -> tuple[dict[str, _Raw], str]:
    raw: dict[str, _Raw] = {}
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


def _load_user_files(config: DataConfig) -> tuple[dict[str, _Raw], str]:
    raw: dict[str, _Raw] = {}
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


def _raw(dataset: Any, where: str, source: SplitSource, config: DataConfig, hint: str) -> _Raw:
    text_columns = list(source.join_columns) or [source.text_column or config.text_column]
    label_column = source.label_column or config.label_column
    return _Raw(dataset, where, text_columns, label_column, dict(source.keep), hint)


def _load_hub(config: DataConfig) -> tuple[dict[str, _Raw], str]:
    import datasets

    if not config.hub and not all(s.path for s in config.hub_splits.values()):
        raise DataError(
            f"Data set '{config.name}' has no local copy and names no Hugging Face Hub dataset. "
            f"Set {DATA_DIR_ENV}=/path/to/data or data.dir=/path/to/data (laid out as "
            f"{_layout(config, Path('<dir>'))}), or set data.hub=<dataset id>."
        )
    raw: dict[str, _Raw] = {}
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


# --------------------------------------------------------------------------------------------
# Normalising, labels, carving, subsampling


def _missing_column(column: str, role: str, raw: _Raw) -> DataError:
    columns = raw.dataset.column_names
    key = "text_column" if role == "text" else ("label_column" if role == "label" else "keep")
    return DataError(
        f"The {role} column '{column}' is not in {raw.where}; its columns are "
        f"{', '.join(columns)}. {did_you_mean(column, columns)} Set {raw.column_hint}.{key}=... "
        "to the right column."
    )


def _normalise(raw: _Raw, label_map: dict[str, str]) -> Any:
    """Filter rows, then reduce to ``text`` (str) and ``label_name`` (str or None)."""
    import datasets

    dataset = raw.dataset
    columns = dataset.column_names
    for column in raw.text_columns:
        if column not in columns:
            raise _missing_column(column, "text", raw)
    if raw.label_column not in columns:
        raise _missing_column(raw.label_column, "label", raw)
    if raw.keep:
        for column in raw.keep:
            if column not in columns:
                raise _missing_column(column, "filter (keep)", raw)
        dataset = dataset.filter(_keep_rows, batched=True, fn_kwargs={"keep": raw.keep})
        if len(dataset) == 0:
            rules = "; ".join(f"{c} in {list(v)}" for c, v in raw.keep.items())
            raise DataError(
                f"No row of {raw.where} is kept by its filter ({rules}): that split would be "
                f"empty. Fix {raw.column_hint}.keep to values that occur in the file."
            )
    if len(dataset) == 0:
        raise DataError(f"{raw.where} has no rows. Every split needs examples: fill it.")
    feature = dataset.features[raw.label_column]
    class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    return dataset.map(
        _to_text_and_label,
        batched=True,
        remove_columns=columns,
        features=datasets.Features(
            {"text": datasets.Value("string"), "label_name": datasets.Value("string")}
        ),
        fn_kwargs={
            "text_columns": raw.text_columns,
            "label_column": raw.label_column,
            "class_names": class_names,
            "label_map": dict(label_map),
        },
        desc="Reading texts and labels",
    )


def _check_train_texts(train: Any, raw: _Raw) -> None:
    """Train texts that are all empty would fit a tokenizer to nothing and a model to padding."""
    for batch in train.select_columns(["text"]).iter(batch_size=10_000):
        if any(batch["text"]):
            return
    columns = " + ".join(raw.text_columns)
    raise DataError(
        f"Every text in {raw.where} (train, column {columns}) is empty: there is nothing to "
        f"learn from. Check the text column ({raw.column_hint}.text_column=...) and the file."
    )


def _keep_rows(batch: dict[str, list], keep: dict[str, list]) -> list[bool]:
    n = len(next(iter(batch.values())))
    mask = [True] * n
    for column, values in keep.items():
        allowed = set(values)
        mask = [m and v in allowed for m, v in zip(mask, batch[column], strict=True)]
    return mask


def _to_text_and_label(
    batch: dict[str, list],
    text_columns: list[str],
    label_column: str,
    class_names: list[str] | None,
    label_map: dict[str, str],
) -> dict[str, list]:
    parts = [batch[c] for c in text_columns]
    texts = [
        " ".join("" if p is None else str(p).strip() for p in row).strip()
        for row in zip(*parts, strict=True)
    ]
    labels: list[str | None] = []
    for value in batch[label_column]:
        if value is None or (class_names is not None and value < 0):
            labels.append(None)
            continue
        if class_names is not None:
            value = class_names[value]
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        name = str(value).strip()
        labels.append(label_map.get(name, name) if name else None)
    return {"text": texts, "label_name": labels}


def _label_key(name: str) -> tuple[int, int | str]:
    """Sort integer-like labels numerically ("2" < "10"), then strings alphabetically."""
    return (0, int(name)) if re.fullmatch(r"[+-]?\d+", name) else (1, name)


def _label_names(
    config: DataConfig, texts: dict[str, Any], raw: dict[str, _Raw], min_labels: int = 2
) -> list[str]:
    seen = {split: ds.unique("label_name") for split, ds in texts.items()}
    for split, values in seen.items():
        if None in values:
            raise DataError(
                f"Some rows of {raw[split].where} ({split}) have no label (an empty or null "
                f"'{raw[split].label_column}'). Every example needs a label: fill them in or "
                "drop those rows."
            )
    first = "train" if "train" in raw else next(iter(raw))  # train, unless scoring files
    if config.label_names:
        labels = [str(n) for n in config.label_names]
        known, what = set(labels), "data.label_names"
    else:
        labels = sorted(seen[first], key=_label_key)
        known, what = set(labels), f"the labels of {first} ({raw[first].where})"
    for split, values in seen.items():
        unknown = sorted(set(values) - known, key=_label_key)
        if unknown:
            raise DataError(
                f"The {split} split ({raw[split].where}) has the label '{unknown[0]}'"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + f", which is not among {what}. {did_you_mean(unknown[0], labels)}"
            )
    if len(labels) < min_labels:
        raise DataError(
            f"The {first} split ({raw[first].where}) has {len(labels)} distinct label(s) "
            f"({', '.join(labels) or 'none'}); a classifier needs at least 2. Check "
            f"data.label_column (now '{raw[first].label_column}'), or add examples of the "
            "other classes."
        )
    return labels


def _encode(dataset: Any, index: dict[str, int]) -> Any:
    import datasets

    return dataset.map(
        _label_ids,
        batched=True,
        remove_columns=["label_name"],
        features=datasets.Features(
            {"text": datasets.Value("string"), "label": datasets.Value("int64")}
        ),
        fn_kwargs={"index": index},
        desc="Encoding labels",
    )


def _label_ids(batch: dict[str, list], index: dict[str, int]) -> dict[str, list]:
    return {"text": batch["text"], "label": [index[n] for n in batch["label_name"]]}


def _carve(config: DataConfig, splits: dict[str, Any], seed: int) -> dict[str, Any]:
    """Hold out validation and/or test from train (seeded), as fractions of the full train."""
    missing = [s for s in ("validation", "test") if s not in splits]
    if not missing:
        return splits
    train = splits["train"]
    n = len(train)
    fractions = {
        "validation": config.validation_fraction,
        "test": config.test_fraction
        if config.test_fraction is not None
        else config.validation_fraction,
    }
    sizes = {s: max(1, round(fractions[s] * n)) for s in missing}
    held = sum(sizes.values())
    if n - held < 1:
        raise DataError(
            f"The train split has {n} example(s): too few to hold out "
            f"{' and '.join(missing)} from it. Provide more data or a "
            f"{' and '.join(missing)} file."
        )
    parts = train.train_test_split(test_size=held, shuffle=True, seed=seed)
    result = dict(splits, train=parts["train"])
    if len(missing) == 1:
        result[missing[0]] = parts["test"]
    else:
        rest = parts["test"].train_test_split(test_size=sizes["test"], shuffle=True, seed=seed)
        result["validation"], result["test"] = rest["train"], rest["test"]
    return result


def _subsample(config: DataConfig, splits: dict[str, Any], seed: int) -> dict[str, Any]:
    limits = {
        "train": config.max_train_samples,
        "validation": config.max_eval_samples,
        "test": config.max_eval_samples,
    }
    result = dict(splits)
    for split, limit in limits.items():
        if split in result and limit is not None and limit < len(result[split]):
            result[split] = result[split].shuffle(seed=seed).select(range(limit))
    return result
