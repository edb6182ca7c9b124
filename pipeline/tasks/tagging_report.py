"""The reports a tagging run logs: ``reports/tag_report.{json,txt}`` (precision, recall, F1
and support per tag, accuracy, macro and weighted averages, from the confusion matrix, as a
classifier's report; plus the OOV accuracy) and, for BIO tags, ``reports/span_report.txt``
(seqeval's per-entity-type span scores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.reporting.reports import classification_report, format_report


def write_tag_reports(
    result: Any,
    tags: list[str],
    folder: Path,
    gold: list[list[str]],
    predicted: list[list[str]],
    bio: bool,
) -> list[Path]:
    """Write the per-tag report (and the span report for BIO tags) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    report = classification_report(result.confusion, tags)
    report["oov_accuracy"] = result.oov_accuracy
    report["oov_words"] = result.oov_words
    written = [folder / "tag_report.json", folder / "tag_report.txt"]
    written[0].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    text = format_report(report)
    text += f"\noov accuracy {result.oov_accuracy:.4f} over {result.oov_words:,} words\n"
    written[1].write_text(text, encoding="utf-8")
    if bio:
        from seqeval.metrics import classification_report as span_report

        path = folder / "span_report.txt"
        path.write_text(span_report(gold, predicted, digits=4, zero_division=0), encoding="utf-8")
        written.append(path)
    return written
