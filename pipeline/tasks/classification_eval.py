"""Evaluate a classifier on one split: loss, accuracy, macro-F1 and the confusion matrix."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.data.batching import EncodedSplit, batch_order, iterate_batches
from pipeline.reporting.metrics import accuracy, confusion_matrix, macro_f1


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    f1: float
    confusion: Tensor  # [C, C]

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}/loss": self.loss,
            f"{prefix}/accuracy": self.accuracy,
            f"{prefix}/f1": self.f1,
        }


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: EncodedSplit,
    *,
    batch_size: int,
    device: torch.device,
    num_classes: int,
    autocast_dtype: torch.dtype | None = None,
) -> Evaluation:
    """Run ``model`` over ``split`` (batches sorted by length) in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    order = batch_order(split.lengths, batch_size, shuffle=False, bucket_size=1)
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    )
    for batch in iterate_batches(split, order, device):
        with autocast:
            logits = model(batch.ids, batch.mask)
        loss_sum += F.cross_entropy(logits.float(), batch.labels, reduction="sum")
        confusion += confusion_matrix(logits.argmax(dim=1), batch.labels, num_classes)
    model.train(was_training)
    confusion = confusion.cpu()
    total = max(int(confusion.sum()), 1)
    return Evaluation(loss_sum.item() / total, accuracy(confusion), macro_f1(confusion), confusion)
