"""``pooler=attention``: additive (Bahdanau-style) attention pooling over real tokens.

score_t = v . tanh(W h_t + b); weights = softmax over the row's real tokens only; the
result is sum_t weights_t h_t. Padding gets weight exactly 0 and a zero-length row pools to
zeros. The weights are returned by ``attend`` (and kept as ``last_weights``) for plots.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.contracts import EncoderOutput, Pooler
from plugins.poolers.configs import AttentionPoolerConfig


class AdditiveAttention(nn.Module):
    """[B, T, H] + mask [B, T] -> pooled [B, H], weights [B, T]."""

    def __init__(self, input_dim: int, attention_size: int) -> None:
        super().__init__()
        self.project = nn.Linear(input_dim, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def forward(self, sequence: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.score(torch.tanh(self.project(sequence))).squeeze(2)  # [B, T]
        scores = scores.float().masked_fill(~mask, float("-inf"))
        # A zero-length row has only -inf scores: softmax would give NaN, so score it 0
        # everywhere and zero its weights afterwards.
        empty = ~mask.any(dim=1, keepdim=True)  # [B, 1]
        weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=1)
        weights = weights.masked_fill(empty | ~mask, 0.0).to(sequence.dtype)  # [B, T]
        pooled = torch.bmm(weights.unsqueeze(1), sequence).squeeze(1)  # [B, H]
        return pooled, weights


class AttentionPooler(Pooler):
    """Learned weighted average of the encoder's steps (weights over real tokens only)."""

    def __init__(self, config: AttentionPoolerConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.attention = AdditiveAttention(input_dim, config.attention_size)
        self.last_weights: Tensor | None = None

    def attend(self, output: EncoderOutput, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Pooled features [B, H] and the attention weights [B, T]."""
        return self.attention(output.sequence, mask)

    def forward(self, output: EncoderOutput, mask: Tensor) -> Tensor:
        pooled, weights = self.attend(output, mask)
        self.last_weights = weights.detach()
        return pooled
