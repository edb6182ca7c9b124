"""Helpers for right-padded batches, public for plugin authors.

A mask [B, T] is True at real tokens; padding is on the right, so row b's real tokens are
``x[b, :length[b]]``. With these, an encoder stays exact under padding without packing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pipeline.contracts import lengths_of

__all__ = ["at_last_token", "lengths_of", "reverse_within_length"]


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first ``length`` steps, leaving its padding in place.

    x [B, T, D], lengths [B]. The permutation is its own inverse: run a backward RNN over
    ``reverse_within_length(x)``, then apply it again to the output, and the backward
    direction starts at each row's last real token.

    Its backward is the same gather (each step receives exactly one gradient), not the
    scatter-add of ``gather``'s own backward: no atomics on CUDA, so it is deterministic
    and needs no slow path under ``torch.use_deterministic_algorithms``.
    """
    steps = torch.arange(x.size(1), device=x.device).unsqueeze(0)  # [1, T]
    lengths = lengths.to(x.device).unsqueeze(1)  # [B, 1]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # [B, T]
    return _Reverse.apply(x, index.unsqueeze(2).expand(-1, -1, x.size(2)))


class _Reverse(torch.autograd.Function):
    """``x.gather(1, index)`` for an index that is an involution along dim 1: its gradient
    is ``grad.gather(1, index)`` (the inverse permutation is the permutation itself)."""

    @staticmethod
    def forward(x: Tensor, index: Tensor) -> Tensor:
        return x.gather(1, index)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        ctx.save_for_backward(inputs[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors
        return _Reverse.apply(grad, index), None


def at_last_token(sequence: Tensor, lengths: Tensor) -> Tensor:
    """The step at each row's last real token: [B, T, H] -> [B, H] (zero for empty rows)."""
    index = (lengths - 1).clamp(min=0).to(sequence.device)
    rows = torch.arange(sequence.size(0), device=sequence.device)
    last = sequence[rows, index]
    return last * (lengths > 0).to(sequence.device).unsqueeze(1).to(last.dtype)
