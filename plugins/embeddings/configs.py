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
