"""The ``data`` config group of labelled data sets: ``DataConfig`` (one preset, or the
user's files) with its per-split sources (``SplitSource``), checked on the way in
(``to_config``), and the presets of ``conf/data`` read as configs (``preset``).

What the fields mean for loading (which source wins, how labels are numbered, what is
carved) is in :mod:`pipeline.data.labelled`, which loads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.data.sources import CONF_DATA, DATA_DIR_ENV, SPLITS, data_presets
from pipeline.errors import ConfigError, did_you_mean
from pipeline.registry import describe, to_dataclass, validate

#: local file formats (``data.format``, ``SplitSource.format``)
FORMATS = ("csv", "tsv", "json", "parquet", "text")
#: how the local formats are named in messages and help
FORMAT_HELP = (
    "CSV (.csv), TSV (.tsv), JSON Lines (.jsonl/.json) or Parquet (.parquet), each optionally "
    "gzipped (.gz)"
)
#: ``data.as_corpus``: which splits' texts a language model may train on.
AS_CORPUS = (("train",), ("train", "test"))


@dataclass
class SplitSource:
    """Where one split comes from: a Hub dataset split, or local file(s) under the data root."""

    path: str | None = describe(
        "Hub: the dataset id (default: data.hub). Local: a file or glob relative to the data "
        "root, e.g. 'imdb/train-*.jsonl.gz'",
        None,
    )
    config: str | None = describe("Hub: the dataset's config name (default: data.hub_config)", None)
    split: str | None = describe("Hub: the split to read (default: this split's own name)", None)
    format: str | None = describe(
        "Local: file format (default: from the extension)", None, choices=list(FORMATS)
    )
    column_names: list[str] = describe("Local: column names of a CSV/TSV without header", [])
    text_column: str | None = describe("the text column (default: data.text_column)", None)
    join_columns: list[str] = describe(
        "build the text by joining these columns with a space (e.g. title, description); "
        "overrides text_column",
        [],
    )
    label_column: str | None = describe("the label column (default: data.label_column)", None)
    keep: dict[str, list[Any]] = describe(
        "keep only rows whose column has one of these values, e.g. {fold: [0]}", {}
    )


@dataclass
class DataConfig:
    """Which data set to load and how to split it (the ``data`` config group)."""

    name: str = describe(
        "preset name, e.g. imdb, sst2, mr, trec, ag_news, files; also the sub-folder of the local "
        "data root"
    )
    dir: str | None = describe(
        f"local data root holding <name>/...; when unset, the environment variable {DATA_DIR_ENV}; "
        "when both are unset, the Hugging Face Hub",
        None,
    )
    max_length: int = describe(
        "truncate texts to this many tokens (tokenize stage; not for task=lm, which reads "
        "whole texts)",
        400,
        min=1,
    )
    truncation_side: str = describe(
        "which end of a text longer than max_length is cut: right keeps its first tokens, "
        "left its last ones (a review's verdict is at its end: data=imdb)",
        "right",
        choices=["right", "left"],
    )
    max_train_samples: int | None = describe(
        "subsample train to this many examples (seeded) for quick runs", None, min=1
    )
    max_eval_samples: int | None = describe(
        "subsample validation and test to this many examples each (seeded)", None, min=1
    )
    validation_fraction: float = describe(
        "fraction of train held out (seeded) as validation when the source has no validation "
        "split; in (0, 1)",
        0.1,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    test_fraction: float | None = describe(
        "fraction of train held out (seeded) as test when the source has no test split; "
        "default: validation_fraction",
        None,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    # Sources of a preset.
    hub: str | None = describe("Hugging Face Hub dataset id, e.g. stanfordnlp/imdb", None)
    hub_config: str | None = describe("the Hub dataset's config name", None)
    hub_splits: dict[str, SplitSource] = describe(
        "train/validation/test -> Hub source (default: the Hub's own train/validation/test)", {}
    )
    local_splits: dict[str, SplitSource] = describe(
        "train/validation/test -> local file(s) relative to the data root", {}
    )
    # Columns and labels.
    text_column: str = describe("name of the text column", "text")
    label_column: str = describe("name of the label column", "label")
    label_map: dict[str, str] = describe(
        "raw label value -> label name, e.g. {'0': neg, '1': pos}; unmapped values are kept", {}
    )
    label_names: list[str] = describe(
        "the label names in id order; default: the labels seen in train, sorted", []
    )
    # The user's own files (data=files).
    train: str | None = describe(
        f"your training file ({FORMAT_HELP}), relative to the working directory", None
    )
    validation: str | None = describe("your validation file (default: carved from train)", None)
    test: str | None = describe("your test file (default: carved from train)", None)
    format: str | None = describe(
        "format of your files (default: from each file's extension)", None, choices=list(FORMATS)
    )
    cache_dir: str | None = describe(
        "datasets cache folder (default: HF_DATASETS_CACHE, else ~/.cache/huggingface/datasets)",
        None,
    )
    # Language modelling on the texts (task=lm; pipeline/data/labelled_corpus.py).
    as_corpus: Any = describe(
        "task=lm on this data set's texts, labels ignored: train (the classifier's own train/"
        "validation texts; test only evaluates perplexity) or [train,test] (also trains on the "
        "test texts: transductive); null: a classification data set",
        None,
    )
    reverse: bool = describe(
        "task=lm: reverse each document's tokens (a backward language model, as ULMFiT's)",
        False,
    )
    corpus_extra: Any = describe(
        "task=lm with data.as_corpus: more training text, a list of labelled data config "
        "names (all their splits' texts) or plain-text files (one document per line; .gz "
        "read through gzip); a document that is or holds a validation/test text of this "
        "data set is dropped",
        None,
    )
    related_texts: Any = describe(
        "unlabelled text related to this data set, for word vectors (embedding.init="
        "word2vec): labelled data config names (all their splits' texts, labels unused) or "
        "plain-text files (one text a line; .gz read through gzip); a text that is or holds "
        "a validation/test text of this data set is dropped",
        [],
    )
    related_words: bool = describe(
        "with related_texts and their word vectors: the vocabulary also takes the related "
        "texts' words (up to tokenizer.vocab_size), so a word never seen in training starts "
        "from its vector instead of being <unk>",
        True,
    )
    suggested: dict[str, Any] = describe(
        "settings this data set trains best with, e.g. {encoder.bidirectional: true} "
        "(data=imdb): a classification run applies each where the user left the default "
        "and the chosen component has the key (encoder=cnn has no bidirectional), and "
        "prints it; not with model.init_from for the model's shape (the language model's)",
        {},
    )

    def suggested_settings(self) -> dict[str, Any]:
        """``data.suggested`` (``ClassificationTask.suggested_settings`` applies them)."""
        return dict(self.suggested)


# --------------------------------------------------------------------------------------------
# Config


def to_config(cfg: DataConfig | Mapping[str, Any] | Any) -> DataConfig:
    """A checked ``DataConfig`` from a ``DataConfig``, a plain dict or a composed Hydra node."""
    config = to_dataclass(
        DataConfig,
        cfg,
        "data",
        missing_hint=" (e.g. data=imdb, or data=files data.train=/path/to/train.csv)",
        fields_at=_owner_of_key,
    )
    _check(config)
    return config


def _owner_of_key(parts: list[str]) -> type:
    """The dataclass a (possibly nested) data key belongs to."""
    nested = len(parts) >= 3 and parts[0] in ("hub_splits", "local_splits")
    return SplitSource if nested else DataConfig


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _check(config: DataConfig) -> None:
    validate(config, "data")
    config.as_corpus = corpus_splits(config.as_corpus)
    for fraction in ("validation_fraction", "test_fraction"):
        value = getattr(config, fraction)
        if value is not None and value <= 0:
            raise ConfigError(f"data.{fraction}={value!r} is too small: it must be > 0.")
    for group in ("hub_splits", "local_splits"):
        splits = getattr(config, group)
        for split, source in splits.items():
            if split not in SPLITS:
                raise ConfigError(
                    f"Unknown split data.{group}.{split}. {did_you_mean(split, SPLITS)}"
                )
            validate(source, f"data.{group}.{split}")


def corpus_splits(value: Any) -> tuple[str, ...] | None:
    """``data.as_corpus`` as a tuple of splits: ``train`` or ``train,test`` (a string, quoted
    on the command line, or a list ``[train,test]``); None when unset."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    splits = tuple(str(p).strip() for p in parts)
    if splits not in AS_CORPUS:
        raise ConfigError(
            f"data.as_corpus={value!r} is not a valid choice: use data.as_corpus=train (the "
            "training texts only) or data.as_corpus=[train,test] (also the test texts: "
            "transductive)."
        )
    return splits


def preset(name: str, **overrides: Any) -> DataConfig:
    """The ``conf/data/<name>.yaml`` preset as a ``DataConfig``, with ``overrides`` applied."""
    from omegaconf import OmegaConf

    path = CONF_DATA / f"{name}.yaml"
    if not path.is_file():
        known = data_presets()
        raise ConfigError(
            f"Unknown data preset '{name}' (data={name}). {did_you_mean(name, known)}"
        )
    node = OmegaConf.merge(OmegaConf.load(path), OmegaConf.create(overrides))
    return to_config(node)
