"""Reports a classification run logs beside its plots, readable at a glance in MLflow.

* ``reports/classification_report.{json,txt}`` and ``plots/classification_report.png``:
  precision, recall, F1 and support per class of the test split, with accuracy and the
  macro and weighted averages, all from the test confusion matrix (rows = true label).
* ``reports/worst_validation_errors.csv`` and ``plots/worst_validation_errors.png``: the
  validation examples the model gets wrong most confidently (highest probability of the
  wrong class it predicts), from one inference pass over the validation split.
* ``plots/attention.png``: a few validation examples' tokens coloured by attention weight,
  when the pooler (``pooler=attention``) or the encoder (``encoder=lstm_attention``)
  exposes attention; no file otherwise.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.data.batching import EncodedSplit, batch_order, iterate_batches
from pipeline.reporting.metrics import per_class_report

#: Columns of ``worst_validation_errors.csv`` (``index``: the row in the validation split).
ERROR_COLUMNS = ("index", "text", "true_label", "predicted_label", "confidence", "p_true")


# -- per-class metrics -------------------------------------------------------------------


def classification_report(confusion: Tensor, labels: Sequence[str]) -> dict[str, Any]:
    """Per-class precision / recall / F1 / support, accuracy, macro and weighted averages.

    ``confusion`` is [C, C] counts, rows = true label. A class never predicted has
    precision 0 (not NaN), one never seen has recall 0. The macro average is over the
    classes present in the targets or the predictions, as ``test/f1`` (``macro_f1``) is,
    so the report's macro F1 equals the logged metric.
    """
    classes = per_class_report(confusion, [str(label) for label in labels])
    counts = confusion.double()
    support = counts.sum(dim=1)  # [C]
    present = (support + counts.sum(dim=0)) > 0  # [C]
    total = int(support.sum().item())
    keys = ("precision", "recall", "f1")
    scores = torch.tensor([[c[k] for k in keys] for c in classes], dtype=torch.float64)  # [C, 3]
    macro = scores[present].mean(dim=0) if present.any() else torch.zeros(3, dtype=torch.float64)
    weighted = (scores * support[:, None]).sum(dim=0) / max(total, 1)
    accuracy = counts.diag().sum().item() / total if total else 0.0
    return {
        "classes": classes,
        "accuracy": accuracy,
        "macro_avg": {**dict(zip(keys, macro.tolist(), strict=True)), "support": total},
        "weighted_avg": {**dict(zip(keys, weighted.tolist(), strict=True)), "support": total},
    }


def format_report(report: dict[str, Any], digits: int = 4) -> str:
    """An aligned text table of ``classification_report``'s result, laid out as sklearn's."""
    names = [c["label"] for c in report["classes"]] + ["weighted avg"]
    width = max(len(name) for name in names)
    column = max(digits + 6, 9)

    def row(name: str, values: Sequence[str]) -> str:
        return f"{name:>{width}} " + " ".join(f"{v:>{column}}" for v in values)

    def number(value: float) -> str:
        return f"{value:.{digits}f}"

    lines = [row("", ["precision", "recall", "f1-score", "support"]), ""]
    for c in report["classes"]:
        lines.append(
            row(
                c["label"],
                [number(c["precision"]), number(c["recall"]), number(c["f1"]), str(c["support"])],
            )
        )
    total = report["macro_avg"]["support"]
    lines += ["", row("accuracy", ["", "", number(report["accuracy"]), str(total)])]
    for name, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        avg = report[key]
        lines.append(
            row(
                name,
                [number(avg["precision"]), number(avg["recall"]), number(avg["f1"]), str(total)],
            )
        )
    return "\n".join(lines) + "\n"


# -- validation predictions and worst errors ---------------------------------------------


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    split: EncodedSplit,
    num_classes: int,
    *,
    device: torch.device,
    batch_size: int = 256,
) -> Tensor:
    """Class probabilities [N, C] (float32, on the CPU) of every row, in the split's order.

    One pass in eval mode over length-sorted batches; the model's mode is restored after.
    """
    was_training = model.training
    model.eval()
    probabilities = torch.zeros(len(split), num_classes)
    order = batch_order(split.lengths, batch_size, shuffle=False, bucket_size=1)
    try:
        for rows, batch in zip(order, iterate_batches(split, order, device), strict=True):
            logits = model(batch.ids, batch.mask)  # [B, C]
            probabilities[rows] = torch.softmax(logits.float(), dim=1).cpu()
    finally:
        model.train(was_training)
    return probabilities


def worst_errors(probabilities: Tensor, targets: Tensor, top_n: int = 20) -> Tensor:
    """Indices of the misclassified rows with the most confident wrong prediction, worst first.

    ``probabilities`` [N, C], ``targets`` [N]; the prediction is the argmax and its
    confidence the probability of that (wrong) class. Ties keep the split's order.
    """
    predicted = probabilities.argmax(dim=1)  # [N]
    wrong = (predicted != targets).nonzero().flatten()  # [E]
    confidence = probabilities[wrong, predicted[wrong]]  # [E]
    order = torch.argsort(confidence, descending=True, stable=True)
    return wrong[order[:top_n]]


@dataclass
class ErrorRow:
    """One misclassified validation example (a row of ``worst_validation_errors.csv``)."""

    index: int
    text: str
    true_label: str
    predicted_label: str
    confidence: float  # p(predicted class)
    p_true: float  # p(true class)


def error_rows(
    probabilities: Tensor,
    targets: Tensor,
    texts: Sequence[str],
    labels: Sequence[str],
    top_n: int = 20,
) -> list[ErrorRow]:
    """The ``top_n`` worst errors (``worst_errors``) with their texts and label names."""
    rows = []
    for i in worst_errors(probabilities, targets, top_n).tolist():
        predicted, true = int(probabilities[i].argmax()), int(targets[i])
        rows.append(
            ErrorRow(
                index=i,
                text=texts[i],
                true_label=str(labels[true]),
                predicted_label=str(labels[predicted]),
                confidence=float(probabilities[i, predicted]),
                p_true=float(probabilities[i, true]),
            )
        )
    return rows


def write_errors_csv(rows: Sequence[ErrorRow], path: str | Path) -> Path:
    """``rows`` as CSV with the header ``ERROR_COLUMNS`` (probabilities to 4 decimals)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ERROR_COLUMNS)
        writer.writeheader()
        for row in rows:
            values = asdict(row)
            values["confidence"] = f"{row.confidence:.4f}"
            values["p_true"] = f"{row.p_true:.4f}"
            writer.writerow(values)
    return Path(path)


# -- attention ---------------------------------------------------------------------------


@torch.inference_mode()
def attention_weights(
    model: nn.Module, split: EncodedSplit, rows: Tensor, device: torch.device
) -> Tensor | None:
    """Attention weights [len(rows), T] (CPU) of a ``SequenceClassifier``'s given rows.

    The pooler's (``attend``, e.g. ``pooler=attention``) if it has one, as that is what the
    classifier pools with, else the encoder's ``EncoderOutput.attention`` (e.g.
    ``encoder=lstm_attention``). None when neither exposes attention, or the model is not
    built from embedding / encoder / pooler submodules.
    """
    parts = [getattr(model, name, None) for name in ("embedding", "encoder", "pooler")]
    if any(part is None for part in parts) or len(rows) == 0:
        return None
    embedding, encoder, pooler = parts
    was_training = model.training
    model.eval()
    try:
        (batch,) = iterate_batches(split, [rows], device)
        output = encoder(embedding(batch.ids), batch.mask)  # sequence [B, T, H]
        if callable(getattr(pooler, "attend", None)):
            _, weights = pooler.attend(output, batch.mask)  # [B, T]
        else:
            weights = output.attention  # [B, T] or None
    finally:
        model.train(was_training)
    return None if weights is None else weights.float().cpu()


def attention_window(weights: Sequence[float], width: int = 40) -> tuple[int, int]:
    """[start, end) of at most ``width`` tokens, centred on the highest weight if the row is
    longer (kept inside the row), so a plot row stays readable."""
    length = len(weights)
    if length <= width:
        return 0, length
    peak = max(range(length), key=lambda t: weights[t])
    start = min(max(peak - width // 2, 0), length - width)
    return start, start + width


def token_texts(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The text of each id: the tokenizer's vocabulary where it has one (specials such as
    ``<unk>`` shown), else its ``decode`` of the single id, else ``#id``."""
    vocab = tokenizer.vocab() if callable(getattr(tokenizer, "vocab", None)) else None
    texts = []
    for i in ids:
        i = int(i)
        text = vocab[i] if vocab is not None and 0 <= i < len(vocab) else tokenizer.decode([i])
        texts.append(text or f"#{i}")
    return texts


# -- the entry point ---------------------------------------------------------------------


def write_classification_reports(
    model: nn.Module,
    validation_split: EncodedSplit,
    validation_texts: Sequence[str],
    test_confusion: Tensor,
    labels: Sequence[str],
    tokenizer: Any,
    device: torch.device,
    out_dir: str | Path,
    *,
    batch_size: int = 256,
    top_n: int = 20,
    attention_examples: int = 4,
    attention_tokens: int = 40,
) -> list[Path]:
    """Write the reports under ``out_dir/reports`` and their PNGs under ``out_dir/plots``.

    ``validation_texts`` are the raw texts of ``validation_split``'s rows, in its order;
    ``test_confusion`` is the test split's [C, C] confusion matrix (rows = true label).
    Returns the paths written (``plots/attention.png`` only for models with attention).
    """
    from pipeline.reporting.plots import (
        attention_plot,
        classification_report_plot,
        worst_errors_plot,
    )

    out_dir = Path(out_dir)
    reports, plots = out_dir / "reports", out_dir / "plots"
    reports.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    labels = [str(label) for label in labels]
    texts = list(validation_texts)
    if len(texts) != len(validation_split):
        raise ValueError(
            f"{len(texts)} validation texts for {len(validation_split)} encoded rows: they "
            "must be the same rows in the same order."
        )
    written: list[Path] = []

    report = classification_report(test_confusion, labels)
    (reports / "classification_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (reports / "classification_report.txt").write_text(
        "test split (rows of the confusion matrix = true label)\n\n" + format_report(report)
    )
    written += [reports / "classification_report.json", reports / "classification_report.txt"]
    written.append(classification_report_plot(report, plots / "classification_report.png"))

    probabilities = predict_probabilities(
        model, validation_split, len(labels), device=device, batch_size=batch_size
    )
    errors: list[ErrorRow] = []
    if validation_split.labels is not None:
        errors = error_rows(probabilities, validation_split.labels, texts, labels, top_n)
    written.append(write_errors_csv(errors, reports / "worst_validation_errors.csv"))
    written.append(
        worst_errors_plot(
            [asdict(row) for row in errors],
            plots / "worst_validation_errors.png",
            title=f"validation: the {len(errors)} most confident errors",
        )
    )

    rows = attention_rows(
        model,
        validation_split,
        probabilities,
        labels,
        tokenizer,
        device,
        attention_examples,
        attention_tokens,
    )
    if rows is not None:
        written.append(attention_plot(rows, plots / "attention.png"))
    return written


def attention_rows(
    model: nn.Module,
    split: EncodedSplit,
    probabilities: Tensor,
    labels: list[str],
    tokenizer: Any,
    device: torch.device,
    examples: int,
    width: int,
) -> list[Any] | None:
    """The attention of the first ``examples`` non-empty rows, each cut to a window of
    ``width`` tokens around its peak; None for models without attention."""
    from pipeline.reporting.plots import AttentionRow

    chosen = (split.lengths > 0).nonzero().flatten()[:examples]
    weights = attention_weights(model, split, chosen, device)
    if weights is None:
        return None
    rows = []
    for k, index in enumerate(chosen.tolist()):
        length = int(split.lengths[index])
        row_weights = weights[k, :length].tolist()
        start, end = attention_window(row_weights, width)
        predicted = int(probabilities[index].argmax())
        title = f"validation #{index}: predicted {labels[predicted]}"
        title += f" (p={float(probabilities[index, predicted]):.2f})"
        if split.labels is not None:
            title += f", true {labels[int(split.labels[index])]}"
        if (start, end) != (0, length):
            title += f"; tokens {start + 1}-{end} of {length}"
        ids = split.ids[index, start:end].tolist()
        rows.append(AttentionRow(title, token_texts(tokenizer, ids), row_weights[start:end]))
    return rows
