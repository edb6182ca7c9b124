"""Language-model losses: summed cross-entropy per target token, perplexity, bits per char."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
            logits, state = model(window.inputs, window.mask, state)
        total += loss_sum(logits, window.targets, window.mask)
    model.train(was_training)
    return LMEvaluation(total.item(), streams.num_targets)
