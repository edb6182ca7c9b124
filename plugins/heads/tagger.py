"""Tagger head: one label per token, features [B, T, H] -> tag logits [B, T, num_tags].

Used by ``task=tagging`` on the encoder's ``sequence`` (no pooler). Dropout -> Linear.
Each token's logits depend on its own features only, so padding never changes a real
token's output (the loss and metrics skip padding besides).
"""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.contracts import Head
from plugins.dropout import Dropout
from plugins.heads.configs import TaggerConfig


class TaggerHead(Head):
    """Dropout -> Linear(input_dim -> num_outputs), applied to every token."""

    def __init__(self, config: TaggerConfig, input_dim: int, num_outputs: int) -> None:
        super().__init__(config, input_dim, num_outputs)
        self.dropout = Dropout(config.dropout)
        self.output = nn.Linear(input_dim, num_outputs)

    def forward(self, features: Tensor) -> Tensor:  # [B, T, H] -> [B, T, num_outputs]
        return self.output(self.dropout(features))
