"""Recurrent encoders: ``lstm``, ``gru`` and ``rnn`` (Elman, tanh).

Stacked layers and both directions are built from single-layer, single-direction torch
RNNs (oneDNN on CPU, cuDNN on GPU), so that padded batches are exact without packing:
the forward direction reads right-padded rows as they are, and the backward direction
reads each row reversed *within its length*, so it starts at the row's last real token.
On CPU this keeps the fused padded kernel, which is ~2.5x faster than packed sequences.

On CUDA the same parameters run in a cuDNN-friendly layout (``plugins.encoders.layout``):
a unidirectional stack is one multi-layer kernel call, and the two directions of a
bidirectional layer run concurrently on two CUDA streams. The numbers are the per-layer
layout's within float tolerance (the same function, fused), and the state dict is the same,
so a checkpoint moves freely between CPU and GPU.

Regularisation (AWD-LSTM): ``weight_dropout`` drops entries of each hidden-to-hidden matrix
with one mask per forward pass and calls the torch RNN with the dropped matrix through
``torch.func.functional_call`` (in training only), so the fused kernel runs as usual and the
parameters stay the raw weights (their gradient flows through the mask). ``locked_dropout``
applies one mask per sequence and feature between stacked layers and on the output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from pipeline.contracts import Encoder, EncoderOutput
from pipeline.masking import at_last_token, lengths_of, reverse_within_length
from plugins.dropout import LockedDropout, dropped_recurrent_weights
from plugins.encoders import layout
from plugins.encoders.configs import RNNConfig


class RecurrentEncoder(Encoder):
    """Shared body of the torch-backed recurrent encoders."""

    rnn_class: type[nn.RNNBase] = nn.LSTM
    #: ``auto``: the fused layout on CUDA, the per-layer one elsewhere (faster on CPU);
    #: ``fused`` or ``layers`` force one (tests compare them on the CPU).
    layout: str = "auto"

    def __init__(self, config: RNNConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        directions = 2 if config.bidirectional else 1
        self.layers = nn.ModuleList()
        width = input_dim
        for _ in range(config.num_layers):
            self.layers.append(
                nn.ModuleList(self._make_rnn(width, config.hidden_size) for _ in range(directions))
            )
            width = config.hidden_size * directions
        self.dropout = nn.Dropout(config.dropout)
        self.locked_dropout = LockedDropout(getattr(config, "locked_dropout", 0.0))
        self.weight_dropout = float(getattr(config, "weight_dropout", 0.0))
        self.output_dim = width
        self.causal = not config.bidirectional  # a backward direction reads ahead

    def _make_rnn(self, input_size: int, hidden_size: int) -> nn.RNNBase:
        return self.rnn_class(input_size, hidden_size, batch_first=True)

    def forward(self, x: Tensor, mask: Tensor, state: Any = None) -> EncoderOutput:
        # x [B, T, D], mask [B, T]; state: per layer, per direction, the torch RNN's state
        lengths = lengths_of(mask)
        fused = layout.fused(self, x)
        if fused and layout.stacked(self):
            x, finals, new_state = layout.run_stack(self, x, lengths, state)
        else:
            x, finals, new_state = self._run_layers(x, lengths, state, concurrent=fused)
        x = self.locked_dropout(x)
        sequence = x * mask.unsqueeze(2).to(x.dtype)  # padding steps are zero
        return EncoderOutput(sequence=sequence, final=torch.cat(finals, dim=1), state=new_state)

    def _run_layers(
        self, x: Tensor, lengths: Tensor, state: Any, *, concurrent: bool = False
    ) -> tuple[Tensor, list[Tensor], list[list[Any]]]:
        """Layer after layer; ``concurrent``: both directions at once (CUDA streams)."""
        new_state: list[list[Any]] = []
        finals: list[Tensor] = []
        for depth, directions in enumerate(self.layers):
            if depth > 0:
                x = self.locked_dropout(self.dropout(x))
            last = depth == len(self.layers) - 1
            initial = state[depth] if state is not None else [None] * len(directions)
            if concurrent and len(directions) == 2:
                runs = layout.run_directions(self, directions, x, lengths, initial, last)
            else:
                runs = [
                    self._run_direction(rnn, direction, x, lengths, initial[direction], last)
                    for direction, rnn in enumerate(directions)
                ]
            outputs = [out for out, _, _ in runs]
            finals += [final for _, _, final in runs if final is not None]
            x = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]
            new_state.append([layer_state for _, layer_state, _ in runs])
        return x, finals, new_state

    def call_rnn(self, rnn: nn.Module, x: Tensor, initial: Any) -> tuple[Tensor, Any]:
        """``rnn(x, initial)``; in training with ``weight_dropout``, with dropped W_hh."""
        if not (self.training and self.weight_dropout > 0):
            return rnn(x, initial)
        dropped = dropped_recurrent_weights(rnn, self.weight_dropout)
        return functional_call(rnn, dropped, (x, initial))

    def _run_direction(
        self, rnn: nn.Module, direction: int, x: Tensor, lengths: Tensor, initial: Any, last: bool
    ) -> tuple[Tensor, Any, Tensor | None]:
        """One layer in one direction: its output [B, T, H] (in reading order), final state,
        and (for the last layer) the output at each row's last real token."""
        inputs = x if direction == 0 else reverse_within_length(x, lengths)
        out, final_state = self.call_rnn(rnn, inputs, initial)  # out [B, T, H]
        final = at_last_token(out, lengths) if last else None
        if direction == 1:
            out = reverse_within_length(out, lengths)
        return out, final_state, final

    def _apply(self, fn: Any, recurse: bool = True) -> RecurrentEncoder:
        """After ``.to(cuda)`` and friends, lay the weights out for the fused layout."""
        super()._apply(fn, recurse)
        layout.flatten(self)
        return self


class LSTMEncoder(RecurrentEncoder):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), torch's fused kernels."""

    rnn_class = nn.LSTM


class GRUEncoder(RecurrentEncoder):
    """Gated recurrent unit (Cho et al. 2014)."""

    rnn_class = nn.GRU


class ElmanEncoder(RecurrentEncoder):
    """Vanilla (Elman) RNN with tanh."""

    rnn_class = nn.RNN
