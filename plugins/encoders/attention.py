"""``encoder=lstm_attention``: an LSTM followed by additive attention pooling.

The LSTM is the ``lstm`` encoder (stacked, bidirectional, exact under padding); on top of
it additive (Bahdanau-style) attention pools the steps into ``pooled`` and exposes its
weights as ``attention`` [B, T] for heatmaps. The default ``pooler=auto`` uses ``pooled``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from pipeline.contracts import EncoderOutput
from plugins.encoders.configs import LSTMAttentionConfig
from plugins.encoders.rnn import LSTMEncoder
from plugins.poolers.attention import AdditiveAttention


class LSTMAttentionEncoder(LSTMEncoder):
    """LSTM, then attention over its steps: ``pooled`` [B, H] and ``attention`` [B, T]."""

    def __init__(self, config: LSTMAttentionConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.attention = AdditiveAttention(self.output_dim, config.attention_size)

    def forward(self, x: Tensor, mask: Tensor, state: Any = None) -> EncoderOutput:
        output = super().forward(x, mask, state)
        pooled, weights = self.attention(output.sequence, mask)
        output.pooled, output.attention = pooled, weights
        return output
