"""Classifier head: pooled features [B, H] -> logits [B, num_classes]."""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.contracts import Head
from plugins.heads.configs import ClassifierConfig


class ClassifierHead(Head):
    """Dropout -> [Linear -> ReLU -> Dropout] -> Linear."""

    def __init__(self, config: ClassifierConfig, input_dim: int, num_outputs: int) -> None:
        super().__init__(config, input_dim, num_outputs)
        layers: list[nn.Module] = [nn.Dropout(config.dropout)]
        width = input_dim
        if config.hidden_size:
            layers += [nn.Linear(width, config.hidden_size), nn.ReLU(), nn.Dropout(config.dropout)]
            width = config.hidden_size
        layers.append(nn.Linear(width, num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)
