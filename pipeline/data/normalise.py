"""Raw labelled splits made uniform, after :mod:`pipeline.data.labelled` read them.

Rows are filtered (``keep``), reduced to ``text`` and a label name, numbered (the preset's
``label_names`` in order, else the labels seen in train, sorted), and missing validation /
test splits are carved from train (seeded); ``max_train_samples`` / ``max_eval_samples``
subsample. Each step names the column or split at fault when the data is not as expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline.data.data_config import DataConfig
from pipeline.errors import DataError, did_you_mean


@dataclass
class RawSplit:
    """One raw split before normalisation, with what error messages need to name it."""

    dataset: Any  # datasets.Dataset
    where: str  # a path or hub id, for messages
    text_columns: list[str]
    label_column: str
    keep: dict[str, list[Any]]
    column_hint: str  # the config key that names the columns, for messages


def missing_column(column: str, role: str, raw: RawSplit) -> DataError:
    columns = raw.dataset.column_names
    key = "text_column" if role == "text" else ("label_column" if role == "label" else "keep")
    return DataError(
        f"The {role} column '{column}' is not in {raw.where}; its columns are "
        f"{', '.join(columns)}. {did_you_mean(column, columns)} Set {raw.column_hint}.{key}=... "
        "to the right column."
    )


def normalise(raw: RawSplit, label_map: dict[str, str]) -> Any:
    """Filter rows, then reduce to ``text`` (str) and ``label_name`` (str or None)."""
    import datasets

    dataset = raw.dataset
    columns = dataset.column_names
    for column in raw.text_columns:
        if column not in columns:
            raise missing_column(column, "text", raw)
    if raw.label_column not in columns:
        raise missing_column(raw.label_column, "label", raw)
    if raw.keep:
        for column in raw.keep:
            if column not in columns:
                raise missing_column(column, "filter (keep)", raw)
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


def check_train_texts(train: Any, raw: RawSplit) -> None:
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


def label_names(
    config: DataConfig, texts: dict[str, Any], raw: dict[str, RawSplit], min_labels: int = 2
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


def encode(dataset: Any, index: dict[str, int]) -> Any:
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


def carve(config: DataConfig, splits: dict[str, Any], seed: int) -> dict[str, Any]:
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


def subsample(config: DataConfig, splits: dict[str, Any], seed: int) -> dict[str, Any]:
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
