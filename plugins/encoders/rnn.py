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

The carried ``state`` (``carries_state``, set by a language model): unpacked, a short row's
state runs on through its padding. Only a language model carries the state, and its
batches have no padding except the tail of the last stream, so when ``carries_state`` is
True and a row is padded, the state is taken again at each row's last real token: for a GRU
or Elman RNN it *is* the layer's output there; an LSTM's cell is not in its output, so the
padded rows are run again, each group of equal length in one call over its real tokens,
with the same (dropped) weights, and their (h, c) scattered into the state. A zero-length
row keeps its initial state (the given one, or zeros). Unpadded batches, and classifiers
(which never set the flag), run exactly as before. Whether a batch is padded is read from
the mask on the CPU only: on a GPU that read would make every training step wait, so there
a padded batch's state runs on through the padding (only the tail of a language model's
last stream is padded, and that row has no real token left to read the state).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from pipeline.contracts import Encoder, EncoderOutput, RecurrentTrace
from pipeline.masking import at_last_token, lengths_of, reverse_within_length
from plugins.dropout import Dropout, LockedDropout, dropped_recurrent_weights
from plugins.encoders import layout
from plugins.encoders.configs import RNNConfig


def padded_on_host(lengths: Tensor, steps: int) -> bool:
    """Whether some row is shorter than ``steps``, where reading that waits for no device
    (the CPU); on a GPU, False without reading (training steps never wait for the GPU)."""
    return lengths.device.type == "cpu" and bool((lengths < steps).any())


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
        self.dropout = Dropout(config.dropout)
        self.locked_dropout = LockedDropout(getattr(config, "locked_dropout", 0.0))
        self.weight_dropout = float(getattr(config, "weight_dropout", 0.0))
        self.output_dim = width
        self.causal = not config.bidirectional  # a backward direction reads ahead

    def _make_rnn(self, input_size: int, hidden_size: int) -> nn.RNNBase:
        return self.rnn_class(input_size, hidden_size, batch_first=True)

    def forward(self, x: Tensor, mask: Tensor, state: Any = None) -> EncoderOutput:
        # x [B, T, D], mask [B, T]; state: per layer, per direction, the torch RNN's state
        lengths = lengths_of(mask)
        exact = self.carries_state and padded_on_host(lengths, x.size(1))
        fused = layout.fused(self, x)
        if fused and layout.stacked(self) and not exact:
            x, finals, new_state = layout.run_stack(self, x, lengths, state)
        else:
            x, finals, new_state = self._run_layers(
                x, lengths, state, concurrent=fused, exact=exact
            )
        x = self.locked_dropout(x)
        sequence = x * mask.unsqueeze(2).to(x.dtype)  # padding steps are zero
        return EncoderOutput(sequence=sequence, final=torch.cat(finals, dim=1), state=new_state)

    def trace(self, x: Tensor, mask: Tensor) -> list[RecurrentTrace]:
        """Gates, cell and hidden state of every layer and direction, recomputed from the
        weights in eval semantics (``plugins.encoders.trace``)."""
        from plugins.encoders.trace import trace_encoder

        return trace_encoder(self.layers, x, mask)

    def _run_layers(
        self,
        x: Tensor,
        lengths: Tensor,
        state: Any,
        *,
        concurrent: bool = False,
        exact: bool = False,
    ) -> tuple[Tensor, list[Tensor], list[list[Any]]]:
        """Layer after layer; ``concurrent``: both directions at once (CUDA streams);
        ``exact``: each state at the row's last real token (see the module docstring)."""
        new_state: list[list[Any]] = []
        finals: list[Tensor] = []
        for depth, directions in enumerate(self.layers):
            if depth > 0:
                x = self.locked_dropout(self.dropout(x))
            last = depth == len(self.layers) - 1
            initial = state[depth] if state is not None else [None] * len(directions)
            if concurrent and len(directions) == 2:
                runs = layout.run_directions(self, directions, x, lengths, initial, last, exact)
            else:
                runs = [
                    self._run_direction(rnn, direction, x, lengths, initial[direction], last, exact)
                    for direction, rnn in enumerate(directions)
                ]
            outputs = [out for out, _, _ in runs]
            finals += [final for _, _, final in runs if final is not None]
            x = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]
            new_state.append([layer_state for _, layer_state, _ in runs])
        return x, finals, new_state

    def call_rnn(
        self, rnn: nn.Module, x: Tensor, initial: Any, dropped: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, Any]:
        """``rnn(x, initial)``; in training with ``weight_dropout``, with dropped W_hh
        (``dropped`` when given, so that two calls can share one draw)."""
        if dropped is None:
            dropped = self.dropped_weights(rnn)
        if dropped is None:
            return rnn(x, initial)
        return functional_call(rnn, dropped, (x, initial))

    def dropped_weights(self, rnn: nn.Module) -> dict[str, Tensor] | None:
        """One draw of ``rnn``'s dropped W_hh (training with ``weight_dropout``), else None."""
        if not (self.training and self.weight_dropout > 0):
            return None
        return dropped_recurrent_weights(rnn, self.weight_dropout)

    def _run_direction(
        self,
        rnn: nn.Module,
        direction: int,
        x: Tensor,
        lengths: Tensor,
        initial: Any,
        last: bool,
        exact: bool = False,
    ) -> tuple[Tensor, Any, Tensor | None]:
        """One layer in one direction: its output [B, T, H] (in reading order), final state
        (``exact``: at each row's last real token), and (for the last layer) the output at
        each row's last real token."""
        inputs = x if direction == 0 else reverse_within_length(x, lengths)
        dropped = self.dropped_weights(rnn)
        out, final_state = self.call_rnn(rnn, inputs, initial, dropped)  # out [B, T, H]
        if exact:
            final_state = self._state_at_last_token(
                rnn, inputs, lengths, initial, out, final_state, dropped
            )
        final = at_last_token(out, lengths) if last else None
        if direction == 1:
            out = reverse_within_length(out, lengths)
        return out, final_state, final

    def _state_at_last_token(
        self,
        rnn: nn.Module,
        inputs: Tensor,
        lengths: Tensor,
        initial: Any,
        out: Tensor,
        final_state: Any,
        dropped: dict[str, Tensor] | None,
    ) -> Any:
        """The state of a padded batch taken at each row's last real token: a GRU's or
        RNN's is its output there; an LSTM's (h, c) comes from running the padded rows
        again over their real tokens (one call per distinct length)."""
        if isinstance(final_state, Tensor):  # GRU, Elman RNN: [1, B, H]
            start = initial if initial is not None else torch.zeros_like(final_state)
            real = (lengths > 0).view(1, -1, 1)
            return torch.where(real, at_last_token(out, lengths).unsqueeze(0), start)
        h, c = final_state  # LSTM: [1, B, H] each
        start = initial if initial is not None else (torch.zeros_like(h), torch.zeros_like(c))
        empty = (lengths == 0).nonzero().flatten()
        h, c = (
            h.index_copy(1, empty, start[0][:, empty]),
            c.index_copy(1, empty, start[1][:, empty]),
        )
        padded = lengths[(lengths > 0) & (lengths < inputs.size(1))]
        for length in sorted(set(padded.tolist())):
            rows = (lengths == length).nonzero().flatten()
            row_initial = None if initial is None else tuple(part[:, rows] for part in initial)
            _, (h_rows, c_rows) = self.call_rnn(rnn, inputs[rows, :length], row_initial, dropped)
            h, c = h.index_copy(1, rows, h_rows), c.index_copy(1, rows, c_rows)
        return h, c

    def _apply(self, fn: Any, recurse: bool = True) -> RecurrentEncoder:
        """After ``.to(cuda)`` and friends, lay the weights out for the fused layout."""
        super()._apply(fn, recurse)
        layout.flatten(self)
        return self


class LSTMEncoder(RecurrentEncoder):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), torch's fused kernels."""

    rnn_class = nn.LSTM
    traceable = True

    def _make_rnn(self, input_size: int, hidden_size: int) -> nn.RNNBase:
        """torch's LSTM, ``encoder.input_bias`` and ``forget_bias`` added to its input and
        forget gates' bias (gate order input, forget, cell, output); 0 leaves torch's
        initialisation as it is."""
        rnn = super()._make_rnn(input_size, hidden_size)
        for gate, key in enumerate(("input_bias", "forget_bias")):
            bias = float(getattr(self.config, key, 0.0))
            if bias:
                with torch.no_grad():
                    rnn.bias_ih_l0[gate * hidden_size : (gate + 1) * hidden_size] += bias
        return rnn


class GRUEncoder(RecurrentEncoder):
    """Gated recurrent unit (Cho et al. 2014)."""

    rnn_class = nn.GRU
    traceable = True


class ElmanEncoder(RecurrentEncoder):
    """Vanilla (Elman) RNN with tanh."""

    rnn_class = nn.RNN
    traceable = True
