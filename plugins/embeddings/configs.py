"""Configs of the embeddings in this package, with no torch import: the plugin loads them at
start-up; each class is imported only when a run builds it (``declare`` in ``plugins``)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.registry import ComponentConfig, describe


@dataclass
class LearnedEmbeddingConfig(ComponentConfig):
    dim: int = describe("embedding vector size", 128, min=1)
    dropout: float = describe(
        "dropout on embedded tokens", 0.25, min=0.0, max=1.0, max_exclusive=True
    )
    dropout_kind: str = describe(
        "how embedding.dropout draws its mask: element (one per value, [B, T, D]) | locked "
        "(variational: one per sequence and feature, [B, 1, D], the same at every step)",
        "element",
        choices=["element", "locked"],
    )
    token_dropout: float = describe(
        "drop whole embedded tokens: one mask per token occurrence ([B, T, 1]), the kept "
        "vectors scaled by 1/(1-p); training only. 0 = off",
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
