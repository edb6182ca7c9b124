"""Configs of the heads in this package, with no torch import: the plugin loads them at
start-up; each class is imported only when a run builds it (``declare`` in ``plugins``)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.registry import ComponentConfig, describe


@dataclass
class ClassifierConfig(ComponentConfig):
    hidden_size: int = describe("size of a hidden layer before the output; 0 for none", 0, min=0)
    dropout: float = describe(
        "dropout before each linear layer", 0.3, min=0.0, max=1.0, max_exclusive=True
    )
    hidden_dropout: float | None = describe(
        "dropout after the hidden layer (with hidden_size > 0); null = the same as dropout",
        None,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    batch_norm: bool = describe(
        "BatchNorm1d after the hidden layer's linear map, before its activation "
        "(with hidden_size > 0)",
        False,
    )
    activation: str = describe(
        "the hidden layer's activation (with hidden_size > 0)",
        "relu",
        choices=["relu", "gelu", "tanh"],
    )


@dataclass
class LMHeadConfig(ComponentConfig):
    dropout: float = describe(
        "dropout on the features before the output projection",
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    tie_weights: bool = describe(
        "share the embedding table as the output weights (Press & Wolf 2017); when the "
        "embedding and encoder sizes differ a bias-free projection bridges them",
        False,
    )
    softmax: str = describe(
        "full: one output layer over the vocabulary; adaptive: torch's "
        "AdaptiveLogSoftmaxWithLoss (Grave et al. 2017), frequent words in a head and rarer "
        "ones in smaller clusters, for large word vocabularies on a CPU (not with tie_weights)",
        "full",
        choices=["full", "adaptive"],
    )
    cutoffs: list[int] = describe(
        "head.softmax=adaptive: ids where the clusters start (increasing; words are ordered by "
        "frequency); those at or above the vocabulary size are dropped",
        [2000, 10000],
    )
    div_value: float = describe(
        "head.softmax=adaptive: each cluster's projection is div_value times narrower than "
        "the previous one's",
        4.0,
        min=1.0,
    )


@dataclass
class TaggerConfig(ComponentConfig):
    dropout: float = describe(
        "dropout on each word's features before the output layer",
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
