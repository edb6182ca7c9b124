"""Classification metrics from a confusion matrix (rows = true class, columns = predicted)."""

from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(predicted: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """[C, C] int64 counts; entry [t, p] counts rows of true class t predicted as p.

    Counted on the tensors' device with ``index_add_`` into a fixed-size table: no host
    sync (``torch.bincount`` reads the largest value on the host to size its output).
    """
    flat = target.long().flatten() * num_classes + predicted.long().flatten()
    counts = torch.zeros(num_classes * num_classes, dtype=torch.long, device=flat.device)
    counts.index_add_(0, flat, torch.ones_like(flat))
    return counts.reshape(num_classes, num_classes)


def accuracy(confusion: Tensor) -> float:
    total = confusion.sum().item()
    return confusion.diag().sum().item() / total if total else 0.0


def macro_f1(confusion: Tensor) -> float:
    """Unweighted mean of per-class F1 over the classes present in targets or predictions."""
    confusion = confusion.double()
    tp = confusion.diag()
    support = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)
    present = (support + predicted) > 0
    if not present.any():
        return 0.0
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    return f1[present].mean().item()


def per_class_report(confusion: Tensor, labels: list[str]) -> list[dict[str, float | str]]:
    """Precision, recall, F1 and support per class."""
    confusion = confusion.double()
    tp = confusion.diag()
    support = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)
    precision = tp / predicted.clamp(min=1)
    recall = tp / support.clamp(min=1)
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    return [
        {
            "label": str(name),
            "precision": precision[i].item(),
            "recall": recall[i].item(),
            "f1": f1[i].item(),
            "support": int(support[i].item()),
        }
        for i, name in enumerate(labels)
    ]
