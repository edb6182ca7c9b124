"""Language-model losses: summed cross-entropy per target token, perplexity, bits per char."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.data.streams import make_streams, windows
from pipeline.runtime.device import autocast

LN2 = math.log(2.0)
IGNORE_INDEX = -100  # a target cross-entropy skips: the padding of a window


def lm_metrics(mean_loss: float, char_level: bool) -> dict[str, float]:
    """Unprefixed ``loss``, ``perplexity`` and, for characters, ``bpc``."""
    out = {"loss": mean_loss, "perplexity": math.exp(min(mean_loss, 700.0))}  # exp overflows
    if char_level:
        out["bpc"] = mean_loss / LN2
    return out


@dataclass
class LMEvaluation:
    """Summed loss over exactly ``tokens`` target tokens."""

    loss_sum: float
    tokens: int

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.tokens, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def metrics(self, prefix: str, char_level: bool) -> dict[str, float]:
        return {f"{prefix}/{k}": v for k, v in lm_metrics(self.loss, char_level).items()}


def loss_sum(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Summed cross-entropy over the real targets of a window (float32), with no host sync.

    Padded targets are ignored (``ignore_index``) rather than selected (``logits[mask]``:
    a boolean index makes the host wait for the device to count them). The padding of a
    window is a suffix of its rows in order (only the last stream is padded, on the right),
    so the sum is bit-identical to the selected rows' sum, and so are the gradients.
    """
    ignored = targets.masked_fill(~mask, IGNORE_INDEX).flatten()
    return F.cross_entropy(
        logits.flatten(0, -2).float(), ignored, ignore_index=IGNORE_INDEX, reduction="sum"
    )


def head_computes_loss(model: nn.Module) -> bool:
    """Whether the language model's head sums its own loss (its ``computes_loss``, e.g.
    ``head.softmax=adaptive``): the model is then called with ``targets=`` and never
    builds [B, T, V] scores. ``model`` may be wrapped (DDP, ``torch.compile``)."""
    inner = getattr(model, "_orig_mod", model)
    inner = getattr(inner, "module", inner)
    return bool(getattr(getattr(inner, "head", None), "computes_loss", False))


def window_loss(
    model: nn.Module, window: Any, state: Any, with_sequence: bool = False
) -> tuple[Any, ...]:
    """(summed loss over the window's real targets, state[, sequence]): through the head's
    own ``loss_sum`` where it has one that avoids the logits, else cross-entropy of them."""
    options: dict[str, Any] = {"with_sequence": True} if with_sequence else {}
    if head_computes_loss(model):
        return model(window.inputs, window.mask, state, targets=window.targets, **options)
    scores, *rest = model(window.inputs, window.mask, state, **options)
    return (loss_sum(scores, window.targets, window.mask), *rest)


def activation_penalty(sequence: Tensor, mask: Tensor, alpha: float, beta: float) -> Tensor:
    """AWD-LSTM's activation regularisers over the real steps only (padding never counts):
    ``alpha * mean(h^2)`` over real tokens and features (AR) plus ``beta * mean((h_t -
    h_{t-1})^2)`` over pairs of consecutive real tokens (TAR); float32, no host sync."""
    h = sequence.float()
    real = mask.unsqueeze(2).to(h.dtype)  # [B, T, 1]
    width = h.size(2)
    penalty = h.new_zeros(())
    if alpha:
        penalty = penalty + alpha * (h.square() * real).sum() / (real.sum() * width).clamp(min=1)
    if beta:
        pairs = real[:, 1:] * real[:, :-1]
        step = (h[:, 1:] - h[:, :-1]).square() * pairs
        penalty = penalty + beta * step.sum() / (pairs.sum() * width).clamp(min=1)
    return penalty


@torch.inference_mode()
def evaluate_lm(
    model: nn.Module,
    ids: Tensor,
    *,
    batch_size: int,
    bptt: int,
    pad_id: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> LMEvaluation:
    """Loss over every target of the stream ``ids`` (N - 1 tokens), state carried."""
    was_training = model.training
    model.eval()
    streams = make_streams(ids, batch_size, pad_id)
    total = torch.zeros((), dtype=torch.float64, device=device)
    state = None
    for window in windows(streams, bptt, device):
        with autocast(device, autocast_dtype):
            summed, state = window_loss(model, window, state)
        total += summed
    model.train(was_training)
    return LMEvaluation(total.item(), streams.num_targets)
