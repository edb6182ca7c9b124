"""``scratch_lstm``: the LSTM written out from its gate equations.

One step, for x_t [B, D], h_{t-1} and c_{t-1} [B, H] (gate order i, f, g, o, as torch)::

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi [+ w_ci ⊙ c_{t-1}])    input gate
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf [+ w_cf ⊙ c_{t-1}])    forget gate
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)                   candidate cell
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                                     cell
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho [+ w_co ⊙ c_t])        output gate
    h_t = o_t ⊙ tanh(c_t)                                               hidden state

The bracketed terms are the peephole connections of Gers & Schmidhuber (2000), diagonal
weights [H] (``peepholes=true``): the input and forget gates look at the previous cell, the
output gate at the new one.

With ``layer_norm=true`` (Ba et al. 2016, "Layer Normalization", §3.1 and appendix), the
input and recurrent contributions are normalised separately, each gate's H units on their
own, scaled by learned gains, before the biases are added; the cell is normalised before
the output tanh, while the cell carried to the next step stays un-normalised::

    pre_t = LN_x(W_i x_t) + LN_h(W_h h_{t-1}) + b_i + b_h [+ peepholes]
    h_t   = o_t ⊙ tanh(LN_c(c_t))

The parameters have nn.LSTM's names, shapes, gate order and initialisation
(``weight_ih_l0`` [4H, D], ``weight_hh_l0`` [4H, H], ``bias_ih_l0``, ``bias_hh_l0`` [4H],
all uniform(-1/√H, 1/√H)), so without peepholes and layer norm an ``lstm`` encoder's
state_dict loads strictly into a ``scratch_lstm`` encoder and both compute the same thing.
``forget_bias`` is added to the forget-gate slice of ``bias_ih_l0`` at initialisation.

The input projections of all time steps are one matrix product before the loop; only
``h @ W_hhᵀ`` and the elementwise gate arithmetic run once per step. Layers, directions,
exactness under padding, ``final`` and the carried ``state`` come from
:class:`~plugins.encoders.rnn.RecurrentEncoder` unchanged: each layer here is a drop-in for
``nn.LSTM(input_size, hidden_size, batch_first=True)``.

Speed (``bench/scratch_lstm.py``: one layer, B 32, T 100, D = H = 128, forward + backward,
CPU): the plain eager loop is the default, at ~0.63x nn.LSTM's fused kernel on one thread.
``torch.jit.script`` (deprecated in torch 2.13) of the whole loop was 6-11% faster, of the
step alone slower; ``torch.compile`` of the step was slower (a guarded call per step), of
the whole loop ~10% faster but only after a ~30 s compile that repeats for every new
sequence length, as the loop is unrolled over T. Neither is worth it: no compile option.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plugins.encoders.configs import ScratchLSTMConfig
from plugins.encoders.rnn import RecurrentEncoder

__all__ = ["ScratchLSTMConfig", "ScratchLSTMEncoder", "ScratchLSTMLayer", "lstm_recurrence"]


def gate_norm(x: Tensor, gain: Tensor, eps: float) -> Tensor:
    """Layer norm of each gate on its own: [..., 4H] normalised per H-slice, times gain [4H]."""
    hidden = gain.size(0) // 4
    normed = F.layer_norm(x.reshape(-1, 4, hidden), [hidden], None, None, eps)
    return normed.reshape(x.shape) * gain


def lstm_step(
    gates_x: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh_t: Tensor,
    weight_ci: Tensor | None,
    weight_cf: Tensor | None,
    weight_co: Tensor | None,
    gain_hh: Tensor | None,
    norm_c_weight: Tensor | None,
    norm_c_bias: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """One time step: ``gates_x`` [B, 4H] holds W_ih x_t + biases; returns (h_t, c_t)."""
    if gain_hh is None:
        gates = torch.addmm(gates_x, h, weight_hh_t)  # W_ih x_t + b + W_hh h_{t-1}
    else:
        gates = gates_x + gate_norm(h.mm(weight_hh_t), gain_hh, eps)
    i, f, g, o = gates.chunk(4, 1)
    if weight_ci is not None and weight_cf is not None:
        i = i + weight_ci * c  # peepholes see the previous cell
        f = f + weight_cf * c
    i = torch.sigmoid(i)
    f = torch.sigmoid(f)
    g = torch.tanh(g)
    c = f * c + i * g
    if weight_co is not None:
        o = o + weight_co * c  # the output gate's peephole sees the new cell
    o = torch.sigmoid(o)
    if norm_c_weight is not None:
        h = o * torch.tanh(F.layer_norm(c, [c.size(1)], norm_c_weight, norm_c_bias, eps))
    else:
        h = o * torch.tanh(c)
    return h, c


def lstm_recurrence(
    gates_x: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    weight_ci: Tensor | None = None,
    weight_cf: Tensor | None = None,
    weight_co: Tensor | None = None,
    gain_hh: Tensor | None = None,
    norm_c_weight: Tensor | None = None,
    norm_c_bias: Tensor | None = None,
    eps: float = 1e-5,
    step: Any = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The time loop. gates_x [T, B, 4H] (input projections and biases of every step),
    h, c [B, H] -> (outputs [B, T, H], h_T, c_T). ``step`` defaults to :func:`lstm_step`."""
    step = lstm_step if step is None else step
    weight_hh_t = weight_hh.t()
    outputs = []
    # unbind, not gates_x[t]: indexing T times makes backward write T full-size [T, B, 4H]
    # gradients (O(T²) memory traffic, measured 1.8x slower); unbind's backward stacks once.
    for gates_t in gates_x.unbind(0):
        h, c = step(
            gates_t, h, c, weight_hh_t, weight_ci, weight_cf, weight_co,
            gain_hh, norm_c_weight, norm_c_bias, eps,
        )  # fmt: skip
        outputs.append(h)
    if not outputs:
        return h.new_zeros(h.size(0), 0, h.size(1)), h, c
    return torch.stack(outputs, dim=1), h, c


class GateNorm(nn.Module):
    """Layer norm of the 4 gates' pre-activations [..., 4H], each gate normalised on its own,
    with a learned gain [4H] and no shift (the LSTM's biases are added after it)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(4 * hidden_size))

    def forward(self, x: Tensor) -> Tensor:
        return gate_norm(x, self.weight, self.eps)


class ScratchLSTMLayer(nn.Module):
    """One layer, one direction, called like ``nn.LSTM(batch_first=True)``:
    ``layer(x [B, T, D], (h0, c0) [1, B, H] each, or None) -> (out [B, T, H], (h_n, c_n))``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        peepholes: bool = False,
        forget_bias: float = 0.0,
        layer_norm: bool = False,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.forget_bias = forget_bias
        self.eps = eps
        gates = 4 * hidden_size
        # nn.LSTM's names, shapes and order (reset_parameters draws them in this order).
        self.weight_ih_l0 = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(gates))
        self.bias_hh_l0 = nn.Parameter(torch.empty(gates))
        self.weight_ci: nn.Parameter | None = None
        self.weight_cf: nn.Parameter | None = None
        self.weight_co: nn.Parameter | None = None
        if peepholes:
            self.weight_ci = nn.Parameter(torch.empty(hidden_size))
            self.weight_cf = nn.Parameter(torch.empty(hidden_size))
            self.weight_co = nn.Parameter(torch.empty(hidden_size))
        self.norm_ih: GateNorm | None = None
        self.norm_hh: GateNorm | None = None
        self.norm_c: nn.LayerNorm | None = None
        if layer_norm:
            self.norm_ih = GateNorm(hidden_size, eps)
            self.norm_hh = GateNorm(hidden_size, eps)
            self.norm_c = nn.LayerNorm(hidden_size, eps=eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.LSTM's init: every weight and bias uniform(-1/√H, 1/√H); the forget gate's
        input bias gets ``forget_bias`` on top. Peepholes likewise, layer norms 1 and 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for weight in (self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0):
                nn.init.uniform_(weight, -bound, bound)
            self.bias_ih_l0[self.hidden_size : 2 * self.hidden_size] += self.forget_bias
            for weight in (self.weight_ci, self.weight_cf, self.weight_co):
                if weight is not None:
                    nn.init.uniform_(weight, -bound, bound)
            for norm in (self.norm_ih, self.norm_hh, self.norm_c):
                if norm is not None:
                    nn.init.ones_(norm.weight)
            if self.norm_c is not None:
                nn.init.zeros_(self.norm_c.bias)

    def forward(
        self, x: Tensor, initial: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batch = x.size(0)
        if initial is None:
            h = x.new_zeros(batch, self.hidden_size)
            c = x.new_zeros(batch, self.hidden_size)
        else:
            h, c = initial[0][0], initial[1][0]  # [1, B, H] -> [B, H]
        bias = self.bias_ih_l0 + self.bias_hh_l0
        # All steps' input projections in one product, time-major: [T, B, 4H].
        steps = x.transpose(0, 1)
        if self.norm_ih is None:
            gates_x = F.linear(steps, self.weight_ih_l0, bias)
        else:
            gates_x = self.norm_ih(F.linear(steps, self.weight_ih_l0)) + bias
        out, h, c = self.recurrence(gates_x, h, c)
        return out, (h.unsqueeze(0), c.unsqueeze(0))

    def recurrence(self, gates_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The time loop over gates_x [T, B, 4H] from (h, c) [B, H]: (out [B, T, H], h_T, c_T)."""
        return lstm_recurrence(
            gates_x,
            h,
            c,
            self.weight_hh_l0,
            self.weight_ci,
            self.weight_cf,
            self.weight_co,
            None if self.norm_hh is None else self.norm_hh.weight,
            None if self.norm_c is None else self.norm_c.weight,
            None if self.norm_c is None else self.norm_c.bias,
            self.eps,
        )

    def extra_repr(self) -> str:
        extras = [f"{self.input_size}, {self.hidden_size}"]
        if self.weight_ci is not None:
            extras.append("peepholes=True")
        if self.forget_bias:
            extras.append(f"forget_bias={self.forget_bias}")
        if self.norm_c is not None:
            extras.append("layer_norm=True")
        return ", ".join(extras)


class ScratchLSTMEncoder(RecurrentEncoder):
    """The LSTM from its gate equations, with optional peepholes and layer norm; stacked
    and bidirectional exactly like ``lstm``, whose weights it loads."""

    config: ScratchLSTMConfig
    traceable = True

    def _make_rnn(self, input_size: int, hidden_size: int) -> ScratchLSTMLayer:
        # RecurrentEncoder.__init__ (via Encoder.__init__) has set self.config by now.
        config = self.config
        return ScratchLSTMLayer(
            input_size,
            hidden_size,
            peepholes=config.peepholes,
            forget_bias=config.forget_bias,
            layer_norm=config.layer_norm,
        )
