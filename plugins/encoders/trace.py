"""The insides of the recurrent encoders, recomputed from their weights step by step.

``RecurrentEncoder.trace`` (``Encoder.trace``, the hook ``python -m pipeline inspect`` reads)
runs each layer and direction through the gate equations below, in float64, in eval
semantics (no dropout of any kind), with torch's own gate order and names of parameters
(``weight_ih_l0`` [G·H, D], ``weight_hh_l0`` [G·H, H], ``bias_ih_l0``, ``bias_hh_l0``):

* LSTM (nn.LSTM, gates i, f, g, o; and ``scratch_lstm``'s layer with its peepholes and
  layer norms): ``input``, ``forget``, ``output`` (gates), ``candidate`` (g), ``cell``, ``hidden``.
* GRU (nn.GRU, gates r, z, n): ``reset``, ``update`` (gates), ``candidate`` (n), ``hidden``
  (h_t = (1 - z) n + z h_{t-1}).
* Elman RNN (nn.RNN): ``preactivation`` (W_ih x + b_ih + W_hh h + b_hh) and ``hidden``.

The backward direction reads each row reversed within its length, exactly as the encoder
does; its quantities are put back in the input's time order, and padding steps are 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.contracts import RecurrentTrace, lengths_of
from pipeline.masking import reverse_within_length

LSTM_GATES = ("input", "forget", "output")
GRU_GATES = ("reset", "update")
Step = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, dict[str, Tensor]]]


def cell_kind(rnn: nn.Module) -> str:
    """``lstm``, ``gru`` or ``rnn``: which equations a layer computes (``scratch_lstm``'s
    layer is an LSTM by its nn.LSTM-shaped weights)."""
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.RNN):
        return "rnn"
    if isinstance(rnn, nn.LSTM) or rnn.weight_hh_l0.size(0) == 4 * rnn.weight_hh_l0.size(1):
        return "lstm"
    raise NotImplementedError(f"cannot trace a recurrent layer of type {type(rnn).__name__}")


def _param(rnn: nn.Module, name: str) -> Tensor | None:
    value = getattr(rnn, name, None)
    return None if value is None else value.detach().double()


def _projections(rnn: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(W_ih x_t + b_ih for every t [T, B, G·H], W_hh, b_hh), float64, time-major."""
    weight_ih, weight_hh = _param(rnn, "weight_ih_l0"), _param(rnn, "weight_hh_l0")
    bias_ih, bias_hh = _param(rnn, "bias_ih_l0"), _param(rnn, "bias_hh_l0")
    zeros = weight_hh.new_zeros(weight_hh.size(0))
    bias_ih = zeros if bias_ih is None else bias_ih
    bias_hh = zeros if bias_hh is None else bias_hh
    steps = x.double().transpose(0, 1)
    norm_ih = getattr(rnn, "norm_ih", None)
    if norm_ih is None:
        return F.linear(steps, weight_ih, bias_ih), weight_hh, bias_hh
    normed = _gate_norm(F.linear(steps, weight_ih), norm_ih.weight, norm_ih.eps)
    return normed + bias_ih + bias_hh, weight_hh, zeros  # scratch_lstm adds both biases so


def _gate_norm(x: Tensor, gain: Tensor, eps: float) -> Tensor:
    hidden = gain.size(0) // 4
    normed = F.layer_norm(x.reshape(-1, 4, hidden), [hidden], None, None, eps)
    return normed.reshape(x.shape) * gain.detach().double()


def lstm_step(rnn: nn.Module, weight_hh: Tensor, bias_hh: Tensor) -> Step:
    """One LSTM step (nn.LSTM, or scratch_lstm's layer with peepholes and layer norms)."""
    peep = [_param(rnn, f"weight_c{gate}") for gate in "ifo"]
    norm_hh, norm_c = getattr(rnn, "norm_hh", None), getattr(rnn, "norm_c", None)

    def step(gates_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        recurrent = F.linear(h, weight_hh, bias_hh)
        if norm_hh is not None:
            recurrent = _gate_norm(recurrent, norm_hh.weight, norm_hh.eps)
        i, f, g, o = (gates_x + recurrent).chunk(4, 1)
        if peep[0] is not None and peep[1] is not None:
            i, f = i + peep[0] * c, f + peep[1] * c
        i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
        c = f * c + i * g
        o = torch.sigmoid(o if peep[2] is None else o + peep[2] * c)
        if norm_c is not None:
            weight, bias = norm_c.weight.detach().double(), norm_c.bias.detach().double()
            h = o * torch.tanh(F.layer_norm(c, [c.size(1)], weight, bias, norm_c.eps))
        else:
            h = o * torch.tanh(c)
        seen = {"input": i, "forget": f, "candidate": g, "output": o, "cell": c, "hidden": h}
        return h, c, seen

    return step


def gru_step(weight_hh: Tensor, bias_hh: Tensor) -> Step:
    """One GRU step, nn.GRU's equations (the reset gate scales W_hn h + b_hn)."""

    def step(gates_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        x_r, x_z, x_n = gates_x.chunk(3, 1)
        h_r, h_z, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, 1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, c, {"reset": r, "update": z, "candidate": n, "hidden": h}

    return step


def rnn_step(rnn: nn.Module, weight_hh: Tensor, bias_hh: Tensor) -> Step:
    """One Elman step: tanh (or relu, nn.RNN's ``nonlinearity``) of the preactivation."""
    activation = torch.relu if getattr(rnn, "nonlinearity", "tanh") == "relu" else torch.tanh

    def step(gates_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        pre = gates_x + F.linear(h, weight_hh, bias_hh)
        h = activation(pre)
        return h, c, {"preactivation": pre, "hidden": h}

    return step


def trace_layer(rnn: nn.Module, x: Tensor) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """One single-layer, single-direction RNN over x [B, T, D] from zero state:
    (name -> [B, T, H] float64, the gate names)."""
    kind = cell_kind(rnn)
    gates_x, weight_hh, bias_hh = _projections(rnn, x)
    if kind == "lstm":
        step, gates = lstm_step(rnn, weight_hh, bias_hh), LSTM_GATES
    elif kind == "gru":
        step, gates = gru_step(weight_hh, bias_hh), GRU_GATES
    else:
        step, gates = rnn_step(rnn, weight_hh, bias_hh), ()
    h = gates_x.new_zeros(x.size(0), weight_hh.size(1))
    c = torch.zeros_like(h)
    seen: dict[str, list[Tensor]] = {}
    for gates_t in gates_x.unbind(0):
        h, c, values = step(gates_t, h, c)
        for name, value in values.items():
            seen.setdefault(name, []).append(value)
    if not seen:  # no time step: every quantity is empty
        empty = x.new_zeros(x.size(0), 0, weight_hh.size(1), dtype=torch.float64)
        names = step(gates_x.new_zeros(x.size(0), gates_x.size(2)), h, c)[2]
        return {name: empty for name in names}, gates
    return {name: torch.stack(values, dim=1) for name, values in seen.items()}, gates


@torch.no_grad()
def trace_encoder(layers: nn.ModuleList, x: Tensor, mask: Tensor) -> list[RecurrentTrace]:
    """Every layer and direction of a :class:`~plugins.encoders.rnn.RecurrentEncoder`'s
    ``layers`` over x [B, T, D]: quantities in x's dtype, in time order, 0 at padding."""
    lengths = lengths_of(mask)
    real = mask.unsqueeze(2).to(torch.float64)
    traces: list[RecurrentTrace] = []
    inputs = x.double()
    for depth, directions in enumerate(layers):
        hidden = []
        for direction, rnn in enumerate(directions):
            reads = inputs if direction == 0 else reverse_within_length(inputs, lengths)
            quantities, gates = trace_layer(rnn, reads)
            if direction == 1:
                quantities = {k: reverse_within_length(v, lengths) for k, v in quantities.items()}
            quantities = {k: v * real for k, v in quantities.items()}
            hidden.append(quantities["hidden"])
            typed = {k: v.to(x.dtype) for k, v in quantities.items()}
            traces.append(RecurrentTrace(depth, direction, typed, gates))
        inputs = torch.cat(hidden, dim=2)
    return traces
