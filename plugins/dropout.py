"""Cheap dropouts for sequences (AWD-LSTM, Merity et al. 2017), shared by the plugins.

* :class:`Dropout`: element-wise dropout as ``nn.Dropout``, with a mask from 15 random bits
  per value on the CPU (half the time of torch's per-element Bernoulli draw there);
* :class:`LockedDropout` (variational dropout, Gal & Ghahramani 2016): one mask per sequence
  and feature, [B, 1, D], the same at every time step;
* :class:`TokenDropout`: one mask per token, [B, T, 1]: a dropped token's whole vector is 0;
* :func:`dropped_recurrent_weights` (DropConnect, Wan et al. 2013): the hidden-to-hidden
  matrices of a torch RNN with one mask per forward pass, to call the RNN with through
  ``torch.func.functional_call``, so that its fused kernel still runs and its parameters
  (and state dict) stay the raw weights.

Each keeps the expected value (kept entries are scaled by 1 / (1 - p)), is the identity in
eval mode or at p = 0, and then draws no random number: a run with it off is bit-identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The CPU mask's resolution: one draw of ``torch.int16.random_()`` is uniform on [0, 2**15).
_LEVELS = 2**15


class Dropout(nn.Module):
    """Element-wise dropout (``nn.Dropout``'s semantics) that is cheap on the CPU.

    torch's CPU dropout draws one Bernoulli float per value: for a [64, 400, 128] embedding
    output that is 28 ms of a 336 ms training step (issue 15). Here each value gets 15
    random bits instead (``int16.random_``), dropped when they fall under
    ``round(p * 2**15)``: the same per-element mask, so ``p`` is kept to 1 part in 32,768
    (0.25 and 0.5 exactly) and the kept values are scaled by the exact ``1 / (1 - p')``,
    which keeps the expected value. On other devices torch's fused kernel is used as is.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu" or self.p == 1:
            return F.dropout(x, self.p, training=True)
        dropped = round(self.p * _LEVELS)
        bits = torch.empty(x.shape, dtype=torch.int16, device=x.device).random_()
        keep = bits.ge(dropped).to(x.dtype).mul_(_LEVELS / (_LEVELS - dropped))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _SharedMaskDropout(nn.Module):
    """Dropout whose mask is shared along some dimensions of x [B, T, D] (:meth:`mask_shape`)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def mask_shape(self, x: Tensor) -> tuple[int, int, int]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(self.mask_shape(x)).bernoulli_(keep).div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LockedDropout(_SharedMaskDropout):
    """x [B, T, D] times a [B, 1, D] mask: each sequence loses the same features at every step."""

    def mask_shape(self, x: Tensor) -> tuple[int, int, int]:
        return (x.size(0), 1, x.size(2))


class TokenDropout(_SharedMaskDropout):
    """x [B, T, D] times a [B, T, 1] mask: each occurrence of a token is dropped whole."""

    def mask_shape(self, x: Tensor) -> tuple[int, int, int]:
        return (x.size(0), x.size(1), 1)


def dropped_recurrent_weights(rnn: nn.Module, p: float) -> dict[str, Tensor]:
    """``weight_hh_l*`` of ``rnn`` (in layer order), each through dropout with its own mask.

    The result is a function of the raw parameters, so their gradient flows through it.
    """
    return {
        name: F.dropout(param, p, training=True)
        for name, param in rnn.named_parameters()
        if name.startswith("weight_hh_l")
    }
