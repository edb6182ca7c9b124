"""The ``indrnn`` encoder: Independently Recurrent Neural Network (Li et al., CVPR 2018).

Each unit keeps its own recurrent weight, so the recurrence is element-wise:

    h_t = relu(W x_t + b + u * h_{t-1})        W [H, D], u [H], b [H]

The input projection of all steps is one matrix product; only the element-wise recurrence
runs step by step. Bounding |u| <= recurrent_max keeps gradients from exploding over long
sequences (the paper's constraint). Written against seqpipe's public API only:
``pipeline.contracts``, ``pipeline.masking`` and ``pipeline.registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.contracts import ComponentConfig, Encoder, EncoderOutput
from pipeline.masking import at_last_token, lengths_of, reverse_within_length
from pipeline.registry import describe, encoders


@dataclass
class IndRNNConfig(ComponentConfig):
    hidden_size: int = describe("hidden units per direction", 128, min=1)
    num_layers: int = describe("stacked IndRNN layers", 2, min=1)
    bidirectional: bool = describe("also read each sequence right to left", False)
    recurrent_max: float = describe("bound on |u|, the per-unit recurrent weight", 1.0, min=0.0)


class IndRNNLayer(nn.Module):
    """One direction of one layer: x [B, T, D] -> h [B, T, H]."""

    def __init__(self, input_dim: int, hidden_size: int, recurrent_max: float) -> None:
        super().__init__()
        self.input = nn.Linear(input_dim, hidden_size)
        self.recurrent = nn.Parameter(torch.empty(hidden_size).uniform_(0.0, recurrent_max))
        self.recurrent_max = recurrent_max

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        projected = self.input(x)  # [B, T, H], all steps at once
        u = self.recurrent.clamp(-self.recurrent_max, self.recurrent_max)
        h = projected.new_zeros(projected[:, 0].shape) if h is None else h
        steps = []
        for t in range(projected.size(1)):
            h = torch.relu(projected[:, t] + u * h)
            steps.append(h)
        return torch.stack(steps, dim=1), h


@encoders.register("indrnn", config=IndRNNConfig)
class IndRNNEncoder(Encoder):
    """Stacked (optionally bidirectional) IndRNN, exact under right padding."""

    def __init__(self, config: IndRNNConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        directions = 2 if config.bidirectional else 1
        self.layers = nn.ModuleList()
        width = input_dim
        for _ in range(config.num_layers):
            self.layers.append(
                nn.ModuleList(
                    IndRNNLayer(width, config.hidden_size, config.recurrent_max)
                    for _ in range(directions)
                )
            )
            width = config.hidden_size * directions
        self.output_dim = width

    def forward(self, x: Tensor, mask: Tensor, state: Any = None) -> EncoderOutput:
        lengths = lengths_of(mask)  # [B]
        x = x * mask.unsqueeze(2).to(x.dtype)
        finals: list[Tensor] = []
        for depth, directions in enumerate(self.layers):
            outputs = []
            for direction, layer in enumerate(directions):
                # The backward direction reads each row reversed within its length, so it
                # starts at the row's last real token and padding never reaches a real one.
                inputs = x if direction == 0 else reverse_within_length(x, lengths)
                out, _ = layer(inputs)
                if depth == len(self.layers) - 1:
                    finals.append(at_last_token(out, lengths))
                outputs.append(out if direction == 0 else reverse_within_length(out, lengths))
            x = torch.cat(outputs, dim=2) * mask.unsqueeze(2).to(x.dtype)
        return EncoderOutput(sequence=x, final=torch.cat(finals, dim=1))
