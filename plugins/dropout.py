"""Cheap dropouts for sequences (AWD-LSTM, Merity et al. 2017), shared by the plugins.

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

import torch.nn.functional as F
from torch import Tensor, nn


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
