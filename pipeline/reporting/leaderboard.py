"""A leaderboard: runs as rows, best first, for the terminal and for a run's artifacts.

One row per run: its name, what varied (a sweep's swept keys, or the params that differ
between the runs shown), the score it is ranked by (its best epoch's monitored metric,
``best/val/accuracy``), its ``test/*`` metrics and how long it took. The sweep callback
prints one at the end of a multirun and logs it on the parent (``leaderboard.md``); the
``runs`` command prints the same from any store. Plain data in, text out: no MLflow here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Metrics where lower is better when no monitor mode says otherwise.
LOWER_IS_BETTER = ("loss", "perplexity", "ppl", "error", "wer", "cer")
#: Params that differ between runs as a consequence, not a choice.
DERIVED_PARAMS = frozenset({"n_params"})
MAX_VARIED = 60  # characters of the "varied" column


@dataclass
class Row:
    """One run on the leaderboard."""

    name: str
    run_id: str
    status: str = "FINISHED"
    varied: dict[str, str] = field(default_factory=dict)
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the other columns: test/*
    seconds: float | None = None


def mode_for(metric: str) -> str:
    """``min`` for losses, perplexities and errors, ``max`` for everything else."""
    return "min" if any(word in metric.lower() for word in LOWER_IS_BETTER) else "max"


def duration(info: Any) -> float | None:
    """A run's wall time in seconds (so far, for a run still going)."""
    if not info.start_time:
        return None
    end = info.end_time or (time.time() * 1000 if info.status == "RUNNING" else None)
    return None if end is None else max(0.0, (end - info.start_time) / 1000)


def row_of(run: Any, score: float | None, varied: dict[str, str], also: Sequence[str] = ()) -> Row:
    """A row for an MLflow run: its ``test/*`` metrics (and those named in ``also``), its
    duration, the given score."""
    logged = run.data.metrics
    shown = {k: v for k, v in logged.items() if k.startswith("test/") or k in also}
    return Row(
        name=run.info.run_name or run.info.run_id,
        run_id=run.info.run_id,
        status=run.info.status,
        varied=varied,
        score=score,
        metrics=shown,
        seconds=duration(run.info),
    )


def sweep_rows(
    children: Iterable[Any], scores: dict[str, float], swept: Sequence[str], mode: str
) -> list[Row]:
    """A sweep's children ranked; each one's swept keys and values as what varied."""
    rows = []
    for run in children:
        varied = {k: run.data.params[k] for k in swept if k in run.data.params}
        rows.append(row_of(run, scores.get(run.info.run_id), varied))
    return ranked(rows, mode)


def varying_params(params: Sequence[dict[str, str]]) -> list[str]:
    """The params whose values differ between runs (a param some runs lack counts)."""
    keys = sorted(set().union(*params)) if params else []
    return [
        k
        for k in keys
        if k not in DERIVED_PARAMS and len({p.get(k) for p in params}) > 1 and len(params) > 1
    ]


def scored(row: Row) -> bool:
    return row.score is not None and not math.isnan(row.score)


def ranked(rows: Iterable[Row], mode: str) -> list[Row]:
    """Finished runs best first by ``score`` (``mode`` max or min), then unfinished runs
    (failed, still running) the same way; rows without a score go last in each."""

    def key(row: Row) -> tuple[bool, bool, float]:
        value = 0.0 if not scored(row) else (-row.score if mode == "max" else row.score)
        return (row.status != "FINISHED", not scored(row), value)

    return sorted(rows, key=key)


def metric_columns(rows: Sequence[Row], score_name: str) -> list[str]:
    """The metrics any row shows besides its score: ``best/*`` first, then ``test/*`` with
    the score's own counterpart (``test/accuracy`` for ``best/val/accuracy``) first."""
    keys = sorted(set().union(*(r.metrics for r in rows))) if rows else []
    twin = "test/" + score_name.rsplit("val/", 1)[-1]
    order = sorted((k for k in keys if k != score_name), key=lambda k: (k != twin, k))
    return sorted(order, key=lambda k: not k.startswith("best/"))


def clock(seconds: float | None) -> str:
    """A run's time as every summary writes it (``3.0s``, ``1m05s``); ``-`` when unknown."""
    from pipeline.training.progress import duration

    return "-" if seconds is None else duration(seconds)


def number(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def shorten(text: str, width: int = MAX_VARIED) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def cells(rows: Sequence[Row], score_name: str) -> tuple[list[str], list[list[str]]]:
    """The header and one list of cells per row (``rows`` already ranked)."""
    tests = metric_columns(rows, score_name)
    with_status = any(r.status != "FINISHED" for r in rows)
    header = ["", "#", "run", "varied", score_name, *tests, "time"]
    header += ["status"] if with_status else []
    body = []
    for rank, row in enumerate(rows, start=1):
        winner = rank == 1 and scored(row) and row.status == "FINISHED"
        varied = " ".join(f"{k}={v}" for k, v in row.varied.items())
        line = ["*" if winner else "", str(rank), row.name, shorten(varied) or "-"]
        line += [number(row.score), *(number(row.metrics.get(k)) for k in tests)]
        line += [clock(row.seconds)] + ([row.status] if with_status else [])
        body.append(line)
    return header, body


def legend(score_name: str, mode: str) -> str:
    better = "higher" if mode == "max" else "lower"
    return f"* best by {score_name} ({better} is better)"


def align(lines: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as text lines, each column as wide as its widest cell."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]


def text_table(rows: Sequence[Row], score_name: str, mode: str) -> str:
    """The leaderboard as aligned plain text, for the terminal."""
    header, body = cells(rows, score_name)
    return "\n".join([*align([header, *body]), legend(score_name, mode)])


def markdown_table(rows: Sequence[Row], score_name: str, mode: str) -> str:
    """The leaderboard as a Markdown table (the parent run's ``leaderboard.md``)."""
    header, body = cells(rows, score_name)
    header[0] = "best"

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    rule = "|" + "|".join("---" for _ in header) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in body), "", legend(score_name, mode)])
