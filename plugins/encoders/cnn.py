"""``encoder=cnn``: Kim (2014) style multi-width 1-D convolutions, a non-recurrent baseline.

One ``Conv1d`` per width runs over the embedded sequence with "same" length output: each
row is padded with (w - 1) // 2 zeros on the left and w // 2 on the right, so even widths
keep T steps too. ReLU, then the widths' feature maps are concatenated:
sequence [B, T, channels * len(widths)]. With ``pooler=max`` (or ``auto``) this is
exactly Kim's max-over-time pooling.

Exact under padding: the input is zeroed at padding steps *before* convolving, so a
window that reaches past a row's last real token sees zeros, exactly as the same row alone
sees its own zero padding. Output padding steps are zeroed afterwards.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.contracts import Encoder, EncoderOutput
from plugins.dropout import Dropout
from plugins.encoders.configs import CNNConfig


class CNNEncoder(Encoder):
    """Parallel convolutions of several widths, ReLU, concatenated per step."""

    def __init__(self, config: CNNConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.widths = [int(w) for w in config.widths]
        self.convs = nn.ModuleList(
            nn.Conv1d(input_dim, config.channels, kernel_size=w) for w in self.widths
        )
        self.dropout = Dropout(config.dropout)
        self.output_dim = config.channels * len(self.widths)

    def forward(self, x: Tensor, mask: Tensor, state: Any = None) -> EncoderOutput:
        # x [B, T, D], mask [B, T] (True = real token, right-padded)
        if x.size(1) == 0:  # Conv1d rejects inputs shorter than its kernel
            return EncoderOutput(sequence=x.new_zeros(x.size(0), 0, self.output_dim))
        real = mask.unsqueeze(2)  # [B, T, 1]
        steps = x.masked_fill(~real, 0.0).transpose(1, 2)  # [B, D, T], zero at padding
        maps = [
            torch.relu(conv(F.pad(steps, ((w - 1) // 2, w // 2))))  # [B, C, T]
            for w, conv in zip(self.widths, self.convs, strict=True)
        ]
        h = torch.cat(maps, dim=1).transpose(1, 2)  # [B, T, C * len(widths)]
        sequence = self.dropout(h).masked_fill(~real, 0.0)  # padding steps are zero
        return EncoderOutput(sequence=sequence, final=None)
