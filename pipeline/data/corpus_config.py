"""The ``data`` config group of text corpora for language models: ``CorpusConfig`` (one
preset of ``conf/data`` with ``type: corpus``, or the user's files), checked on the way in
(``to_corpus_config``), and the presets read as configs (``preset``, ``corpus_presets``).

How the fields shape loading (sources, cleaning, carving, first lines) is in
:mod:`pipeline.data.corpus`, which loads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.data.sources import CONF_DATA, DATA_DIR_ENV, SPLITS, data_presets
from pipeline.errors import ConfigError, did_you_mean
from pipeline.registry import describe, to_dataclass, validate

CLEANERS = ("none", "letters")
CARVE_UNITS = ("chars", "lines")


@dataclass
class CorpusConfig:
    """A language-modelling corpus and how to split it (the ``data`` group for ``task=lm``)."""

    name: str = describe(
        "preset name, e.g. timemachine, tiny_shakespeare, ptb, wikitext2; also the sub-folder "
        "of the local data root"
    )
    type: str = describe(
        "marks a corpus (language-modelling) data preset; classification presets lack it",
        "corpus",
        choices=["corpus"],
    )
    dir: str | None = describe(
        f"local data root holding <name>/...; when unset, the environment variable {DATA_DIR_ENV}; "
        "when both are unset, the Hugging Face Hub",
        None,
    )
    hub: str | None = describe("Hugging Face Hub dataset id, e.g. Salesforce/wikitext", None)
    hub_config: str | None = describe("the Hub dataset's config name", None)
    hub_splits: dict[str, str] = describe(
        "train/validation/test -> the Hub's split name (default: the Hub's own train/validation/"
        "test)",
        {},
    )
    text_column: str = describe("the Hub dataset's text column", "text")
    origin: str | None = describe(
        "where a local copy can be downloaded from, for corpora with no Hub copy (shown in the "
        "error when none is configured)",
        None,
    )
    local_splits: dict[str, str] = describe(
        "train/validation/test -> a text file (or glob; optionally .gz) relative to the data "
        "root, e.g. ptb/ptb.train.txt.gz",
        {},
    )
    clean: str = describe(
        "per-line cleaning: none, or letters (d2l: re.sub('[^A-Za-z]+', ' ', line).strip()"
        ".lower())",
        "none",
        choices=list(CLEANERS),
    )
    skip_empty_lines: bool = describe(
        "drop lines that are empty or only whitespace after cleaning", False
    )
    line_end: str = describe(
        "appended to every line: '\\n' keeps a character stream identical to the file; '' "
        "concatenates lines (d2l) or leaves the end of line to the tokenizer (<eos>)",
        "\n",
    )
    validation_fraction: float = describe(
        "when the source has no validation split: this fraction of train, taken from its end "
        "(contiguous, not shuffled); in (0, 1)",
        0.1,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    test_fraction: float | None = describe(
        "when the source has no test split: this fraction of train, taken from its very end "
        "(after validation); null = no test split is carved",
        None,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    carve_by: str = describe(
        "carve validation/test at a character offset (chars: exact, may split one line; "
        "nanoGPT's split) or between lines (lines)",
        "chars",
        choices=list(CARVE_UNITS),
    )
    max_train_lines: int | None = describe(
        "keep only the first n lines of train (quick runs)", None, min=1
    )
    max_eval_lines: int | None = describe(
        "keep only the first n lines of validation and of test (quick runs)", None, min=1
    )
    max_train_chars: int | None = describe(
        "keep only the first n characters of train, cut inside a line if need be (d2l's "
        "max_tokens=10000 for its character-level time machine)",
        None,
        min=1,
    )
    cache_dir: str | None = describe(
        "datasets cache folder (default: HF_DATASETS_CACHE, else ~/.cache/huggingface/datasets)",
        None,
    )
    reverse: bool = describe(
        "reverse each line's tokens, its <eos> kept last (a backward language model, as "
        "ULMFiT's; pipeline/data/documents.py)",
        False,
    )


def corpus_presets() -> list[str]:
    """The names of the ``conf/data`` presets that are corpora (``type: corpus``)."""
    return data_presets("corpus")


def to_corpus_config(node: CorpusConfig | Mapping[str, Any] | Any) -> CorpusConfig:
    """A checked ``CorpusConfig`` from a ``CorpusConfig``, a plain dict or a composed node."""
    if isinstance(node, CorpusConfig):
        config = node
    else:
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        try:
            if not OmegaConf.is_config(node):
                node = OmegaConf.create(dict(node))
            kind = node.get("type") if OmegaConf.is_dict(node) else None
        except OmegaConfBaseException as e:
            raise ConfigError(f"Invalid data config: {e}") from None
        if kind is None and OmegaConf.is_dict(node) and "label_column" in node:
            name = node.get("name")
            raise ConfigError(
                f"data={name} is a classification data set, but language modelling (task=lm) "
                f"needs a text corpus (a preset with type: corpus): "
                f"{', '.join(corpus_presets())}."
            )
        presets = " / data=".join(corpus_presets()) or "tiny_shakespeare"
        config = to_dataclass(
            CorpusConfig, node, "data", missing_hint=f" (a corpus preset, e.g. data={presets})"
        )
    _check(config)
    return config


def _check(config: CorpusConfig) -> None:
    validate(config, "data")
    for fraction in ("validation_fraction", "test_fraction"):
        value = getattr(config, fraction)
        if value is not None and value <= 0:
            raise ConfigError(f"data.{fraction}={value!r} is too small: it must be > 0.")
    if config.test_fraction is not None and config.validation_fraction + config.test_fraction >= 1:
        raise ConfigError(
            f"data.validation_fraction + data.test_fraction = "
            f"{config.validation_fraction + config.test_fraction:g} leaves no training data: "
            "their sum must be < 1."
        )
    for group in ("hub_splits", "local_splits"):
        splits = getattr(config, group)
        for split in splits:
            if split not in SPLITS:
                raise ConfigError(
                    f"Unknown split data.{group}.{split}. {did_you_mean(split, SPLITS)}"
                )
        if splits and "train" not in splits:
            raise ConfigError(
                f"data.{group} names {', '.join(splits)} but no train split: add "
                f"data.{group}.train=..."
            )


def preset(name: str, **overrides: Any) -> CorpusConfig:
    """The ``conf/data/<name>.yaml`` corpus preset as a ``CorpusConfig``, with ``overrides``."""
    from omegaconf import OmegaConf

    path = CONF_DATA / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"Unknown corpus preset '{name}' (data={name}). {did_you_mean(name, corpus_presets())}"
        )
    return to_corpus_config(OmegaConf.merge(OmegaConf.load(path), OmegaConf.create(overrides)))
