"""PNG plots logged with each run: learning curves, the confusion matrix, and for
classifiers the per-class report, the worst validation errors and attention heatmaps."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    """Loss (train and validation) and validation accuracy / F1 (classifiers) or
    perplexity (language models) per epoch, saved as an image at ``path``."""
    plt = _pyplot()
    fig = curves_figure(history)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def curves_figure(history: list[dict[str, float]]) -> Any:
    """The learning curves' figure: two axes over the epochs, ticked at whole epochs."""
    from matplotlib.ticker import MaxNLocator

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
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: 1, 2, not 1.5
    fig.tight_layout()
    return fig


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


def _table(
    columns: Sequence[str],
    cells: Sequence[Sequence[str]],
    widths: Sequence[float],
    align: Sequence[str],
    path: str | Path,
    title: str,
    *,
    gaps: Sequence[int] = (),
) -> Path:
    """Draw a table: ``widths`` in inches per column, ``align`` 'left' / 'right' per
    column; a thin rule above each row index in ``gaps``. Text is never read as math."""
    from matplotlib.table import Table

    plt = _pyplot()
    row_height = 0.3  # inches
    width, height = sum(widths), row_height * (len(cells) + 1)
    fig = plt.figure(figsize=(width + 0.4, height + 0.7))
    axis = fig.add_axes(
        (0.2 / (width + 0.4), 0.1 / (height + 0.7), width / (width + 0.4), height / (height + 0.7))
    )
    axis.set_axis_off()
    table = Table(axis, bbox=(0, 0, 1, 1))
    share = [w / width for w in widths]
    for r, row in enumerate([list(columns), *cells]):
        for c, text in enumerate(row):
            cell = table.add_cell(
                r,
                c,
                share[c],
                1 / (len(cells) + 1),
                text=str(text),
                loc=align[c],
                edgecolor="#cccccc",
                facecolor="#e8eef7" if r == 0 else "white",
            )
            cell.visible_edges = "B" if r == 0 else ("T" if r - 1 in gaps else "")
            cell.PAD = min(0.1, 0.1 / widths[c])  # a share of the width: ~0.1 inch at most
            cell.get_text().set_parse_math(False)
            cell.get_text().set_fontsize(10)
            if r == 0:
                cell.get_text().set_fontweight("bold")
    table.auto_set_font_size(False)
    axis.add_table(table)
    axis.set_title(title, loc="left", fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def classification_report_plot(
    report: Mapping[str, Any], path: str | Path, title: str = "test classification report"
) -> Path:
    """The table of ``pipeline.reporting.reports.classification_report``: a row per class, then
    accuracy and the macro and weighted averages."""
    rows = [
        [
            c["label"],
            f"{c['precision']:.4f}",
            f"{c['recall']:.4f}",
            f"{c['f1']:.4f}",
            str(c["support"]),
        ]
        for c in report["classes"]
    ]
    total = str(report["macro_avg"]["support"])
    gap = len(rows)
    rows.append(["accuracy", "", "", f"{report['accuracy']:.4f}", total])
    for name, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        avg = report[key]
        rows.append(
            [name, f"{avg['precision']:.4f}", f"{avg['recall']:.4f}", f"{avg['f1']:.4f}", total]
        )
    name_width = max(1.4, 0.09 * max(len(r[0]) for r in rows) + 0.3)
    return _table(
        ["", "precision", "recall", "f1-score", "support"],
        rows,
        [name_width, 1.0, 1.0, 1.0, 1.0],
        ["left", "right", "right", "right", "right"],
        path,
        title,
        gaps=[gap],
    )


def worst_errors_plot(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    title: str = "validation: the most confident errors",
    text_width: int = 80,
) -> Path:
    """One line per error (keys ``text``, ``true_label``, ``predicted_label``,
    ``confidence``, ``p_true``), texts cut to ``text_width`` characters."""
    cells = [
        [
            textwrap.shorten(
                " ".join(str(r["text"]).split()) or "(empty)", text_width, placeholder=" ..."
            ),
            str(r["true_label"]),
            str(r["predicted_label"]),
            f"{float(r['confidence']):.3f}",
            f"{float(r['p_true']):.3f}",
        ]
        for r in rows
    ]
    if not cells:
        cells = [["(none: every validation example is classified correctly)", "", "", "", ""]]
    label_width = max([1.0] + [0.09 * len(c[i]) + 0.3 for c in cells for i in (1, 2)])
    return _table(
        ["text", "true", "predicted", "confidence", "p(true)"],
        cells,
        [0.072 * text_width + 0.3, label_width, label_width, 1.0, 0.9],
        ["left", "left", "left", "right", "right"],
        path,
        title,
    )


@dataclass
class AttentionRow:
    """One example of an attention heatmap: its title, tokens and their weights."""

    title: str
    tokens: list[str]
    weights: list[float]  # [T], one per token


def attention_plot(
    rows: Sequence[AttentionRow],
    path: str | Path,
    title: str = "attention over validation examples (colour: weight / row's highest)",
) -> Path:
    """One heatmap strip per example, its tokens written under their cells; colours are
    scaled to each row's highest weight (printed in the row's title)."""
    if not rows:
        raise ValueError("attention_plot needs at least one row")
    plt = _pyplot()
    longest = max(len(r.tokens) for r in rows)
    fig, axes = plt.subplots(
        len(rows),
        1,
        figsize=(max(6.0, 0.32 * longest + 1.0), 1.9 * len(rows) + 0.4),
        squeeze=False,
    )
    for axis, row in zip(axes[:, 0], rows, strict=True):
        weights = [list(row.weights)] if row.weights else [[0.0]]
        peak = max(max(weights[0]), 1e-12)
        axis.imshow(weights, cmap="Reds", vmin=0, vmax=peak, aspect="auto")
        axis.set_xticks(
            range(len(row.tokens)),
            row.tokens,
            rotation=60,
            ha="right",
            rotation_mode="anchor",
            fontsize=9,
            parse_math=False,
        )
        axis.set_yticks([])
        axis.set_title(
            f"{row.title}; max weight {peak:.3f}", loc="left", fontsize=9, parse_math=False
        )
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
