"""PNG plots logged with each run: learning curves and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    """Loss (train and validation) and validation accuracy / F1 (classifiers) or
    perplexity (language models) per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train/loss"] for h in history], "o-", label="train/loss")
    left.plot(epochs, [h["val/loss"] for h in history], "o-", label="val/loss")
    left.set_xlabel("epoch")
    left.set_title("loss")
    left.legend()
    if "val/perplexity" in history[0]:  # language model: perplexity, log scale
        for key in ("train/perplexity", "val/perplexity"):
            right.plot(epochs, [h[key] for h in history], "o-", label=key)
        right.set_yscale("log")
        right.set_title("perplexity")
    else:
        for key in ("val/accuracy", "val/f1"):
            right.plot(epochs, [h[key] for h in history], "o-", label=key)
        right.set_title("validation")
    right.set_xlabel("epoch")
    right.legend()
    for axis in (left, right):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def confusion_matrix_plot(
    confusion: Tensor, labels: list[str], path: str | Path, title: str = "test confusion matrix"
) -> Path:
    """Counts with row-normalised colours (rows = true label)."""
    plt = _pyplot()
    counts = confusion.double()
    share = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.7 * len(labels) + 2)
    fig, axis = plt.subplots(figsize=(size, size))
    axis.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    for t in range(len(labels)):
        for p in range(len(labels)):
            axis.text(
                p,
                t,
                int(counts[t, p]),
                ha="center",
                va="center",
                color="white" if share[t, p] > 0.5 else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
