"""Mask-aware poolers: [B, T, H] + mask [B, T] -> [B, H]. Padding never changes the result.

``auto`` (the default) takes the summary an encoder pools itself (``lstm_attention``'s
attention) and otherwise max-pools, so ``encoder=lstm_attention`` uses its attention with
no second override, while ``pooler=max`` (or any other) always means what it says.
``concat`` joins last, max and mean (ULMFiT) into one vector three times as wide.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.contracts import EncoderOutput, Pooler
from pipeline.masking import at_last_token, lengths_of
from plugins.poolers.configs import PoolerConfig


class LastPooler(Pooler):
    """The encoder's own summary (``final``: both directions' true final states for a
    bidirectional RNN), else the output at each row's last real token."""

    def forward(self, output: EncoderOutput, mask: Tensor) -> Tensor:
        if output.final is not None:
            return output.final
        return at_last_token(output.sequence, lengths_of(mask))  # empty rows -> 0


class MeanPooler(Pooler):
    """Average over real tokens (divides by the true length; zero-length rows give 0)."""

    def forward(self, output: EncoderOutput, mask: Tensor) -> Tensor:
        weights = mask.unsqueeze(2).to(output.sequence.dtype)  # [B, T, 1]
        total = (output.sequence * weights).sum(dim=1)  # [B, H]
        return total / weights.sum(dim=1).clamp(min=1.0)


class MaxPooler(Pooler):
    """Element-wise max over real tokens (padding masked with -inf; zero-length rows give 0)."""

    def forward(self, output: EncoderOutput, mask: Tensor) -> Tensor:
        seq = output.sequence.masked_fill(~mask.unsqueeze(2), float("-inf"))
        pooled = seq.max(dim=1).values  # [B, H]
        return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


class ConcatPooler(Pooler):
    """[last, max, mean] over real tokens (ULMFiT's concat pooling): three times the
    encoder's width. ``last`` is :class:`LastPooler`'s (both directions' true final states
    for a bidirectional RNN), so padding never changes any part."""

    def __init__(self, config: PoolerConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.parts = nn.ModuleList(
            [
                LastPooler(config, input_dim),
                MaxPooler(config, input_dim),
                MeanPooler(config, input_dim),
            ]
        )
        self.output_dim = 3 * input_dim

    def forward(self, output: EncoderOutput, mask: Tensor) -> Tensor:
        return torch.cat([part(output, mask) for part in self.parts], dim=1)


class AutoPooler(MaxPooler):
    """The encoder's own pooled summary where it makes one (attention encoders), else max."""

    def forward(self, output: EncoderOutput, mask: Tensor) -> Tensor:
        if output.pooled is not None:
            return output.pooled
        return super().forward(output, mask)
