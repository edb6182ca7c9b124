"""Configs of the poolers in this package, with no torch import: the plugin loads them at
start-up; each class is imported only when a run builds it (``declare`` in ``plugins``)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.registry import ComponentConfig, describe


@dataclass
class PoolerConfig(ComponentConfig):
    pass


@dataclass
class AttentionPoolerConfig(ComponentConfig):
    attention_size: int = describe("size of the attention's hidden layer", 128, min=1)
