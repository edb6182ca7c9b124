"""Generated labelled data: no files, made from the run's seed (``data=long_lag``).

``long_lag``, after Hochreiter & Schmidhuber (1997)'s long-time-lag experiments: each text is
a first symbol followed by ``length`` distractor symbols drawn from the same alphabet of
``num_classes`` symbols (the words ``s0 s1 ...``), and its label is that first symbol. A model
that reads left to right and classifies from its last state (``pooler=last``) must carry the
first symbol across ``length`` steps: the task a plain RNN fails and an LSTM learns.

Each split is drawn from its own numpy generator seeded by ``(seed, split)``, so the same
seed and sizes give the same rows (the data fingerprint, hence ``trainer.resume``, holds), and
a larger train split leaves validation and test as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.data.sources import SPLITS, data_presets
from pipeline.registry import describe, to_dataclass

if TYPE_CHECKING:  # pragma: no cover
    import datasets

#: The ``type`` of a generated preset in ``conf/data`` (see :func:`generated_presets`).
GENERATED = "generated"


@dataclass
class LongLagConfig:
    """``data=long_lag``: the label is the first symbol, ``length`` distractors follow."""

    name: str = describe("preset name", "long_lag")
    type: str = describe(
        "generated: the rows are made from the run's seed, no files", GENERATED, choices=[GENERATED]
    )
    length: int = describe(
        "distractor symbols after the first one (the time lag to bridge)", 100, min=1
    )
    num_classes: int = describe(
        "symbols in the alphabet (s0, s1, ...), hence classes; chance is 1 / num_classes",
        8,
        min=2,
    )
    train_size: int = describe("training sequences", 5000, min=1)
    validation_size: int = describe("validation sequences", 500, min=1)
    test_size: int = describe("test sequences", 1000, min=1)

    def suggested_settings(self) -> dict[str, float | int]:
        """A small model with many steps (8 symbols need no 128-wide layers; a sequence is
        100 steps of one thread), and an LSTM (``encoder=lstm``) initialised for lags of
        ``length`` steps, after Tallec & Ollivier (2018)'s chrono initialisation: forget
        gates' bias log(length + 1) (with torch's 0 the first symbol's trace, and its
        gradient, shrink about 2^length-fold and nothing is learned) and input gates' bias
        minus that (the distractors are barely written at first). Components without a key
        (``forget_bias`` of gru, rnn) skip it."""
        lag = round(math.log(self.length + 1), 2)
        return {
            "encoder.forget_bias": lag,
            "encoder.input_bias": -lag,
            "encoder.hidden_size": 64,
            "embedding.dim": 32,
            "trainer.batch_size": 32,
            "optimizer.lr": 3e-3,
        }

    @property
    def max_length(self) -> int:
        """Every text is ``length + 1`` words: none is truncated."""
        return self.length + 1


def generated_presets() -> list[str]:
    """The ``conf/data`` presets that are generated (``type: generated``)."""
    return data_presets(GENERATED)


def is_generated(node: Any) -> bool:
    """Whether a composed ``data`` node (or dict, or config) describes generated data."""
    kind = node.get("type") if hasattr(node, "get") else getattr(node, "type", None)
    return kind == GENERATED


def to_long_lag_config(node: Any) -> LongLagConfig:
    """A checked ``LongLagConfig`` from a composed node, a dict or a config."""
    return to_dataclass(LongLagConfig, node, "data")


def symbol_rows(config: LongLagConfig, seed: int, split: str) -> Any:
    """The symbol ids of ``split``: an int64 array [rows, length + 1]; column 0 is the label."""
    import numpy as np

    rows = getattr(config, f"{split}_size")
    generator = np.random.default_rng([seed, SPLITS.index(split)])
    return generator.integers(0, config.num_classes, size=(rows, config.length + 1))


def long_lag_splits(node: Any, seed: int) -> tuple[datasets.DatasetDict, list[str], str]:
    """Train / validation / test of ``data=long_lag`` as ``text`` (str) and ``label`` (int64),
    with the label names (``s0``...) and a line saying where they came from."""
    import datasets

    config = to_long_lag_config(node)
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.Value("int64")}
    )
    splits = {}
    for split in SPLITS:
        symbols = symbol_rows(config, seed, split)
        texts = [" ".join(f"s{s}" for s in row) for row in symbols.tolist()]
        splits[split] = datasets.Dataset.from_dict(
            {"text": texts, "label": symbols[:, 0].tolist()}, features=features
        )
    source = (
        f"generated:long_lag(length={config.length}, num_classes={config.num_classes}, seed={seed})"
    )
    labels = [f"s{i}" for i in range(config.num_classes)]
    return datasets.DatasetDict(splits), labels, source
