"""A sweep's children by their BEST epochs: what the parent run and ``sweep_summary.json``
record about them (never a child's last epoch, which the runs list shows as ``val/*``).

Each child logs its best epoch's values as ``best/val/*`` and ``best_epoch``
(:mod:`pipeline.run.results`). A child that stopped before logging them (a failed job) is
read from its per-epoch history instead: the first epoch with the best monitored value, as
the EpochBook chooses it. On the parent, at step 0:

- ``child/<child run name>/best/<monitor>``: each finished child's best monitored value (one
  chart per child in the UI's "child" section; characters MLflow refuses in a metric name,
  such as ``=``, become ``_``);
- ``best/val/*`` and ``best/test/*``: the best child's best epoch and its test metrics.
"""

from __future__ import annotations

import math
import re
from typing import Any

UNSAFE = re.compile(r"[^\w.\- ]")  # metric names: word characters . - space (and / between)


def child_best(client: Any, run: Any, monitor: str, mode: str) -> dict[str, float]:
    """A child's best epoch: ``{"best_epoch": 2, "val/accuracy": ..., "val/loss": ...}``."""
    metrics = run.data.metrics
    logged = {k[len("best/") :]: v for k, v in metrics.items() if k.startswith("best/val/")}
    if monitor in logged:
        if "best_epoch" in metrics:
            logged["best_epoch"] = metrics["best_epoch"]
        return logged
    keys = [k for k in metrics if k.startswith("val/")]
    return best_from_history(client, run.info.run_id, keys, monitor, mode)


def best_from_history(
    client: Any, run_id: str, keys: list[str], monitor: str, mode: str
) -> dict[str, float]:
    """The values of ``keys`` at the first epoch whose ``monitor`` is the best (NaN never is)."""
    points = [m for m in client.get_metric_history(run_id, monitor) if not math.isnan(m.value)]
    if not points:
        return {}
    sign = 1.0 if mode == "max" else -1.0
    best = max(points, key=lambda m: (sign * m.value, -m.step))
    found = {"best_epoch": float(best.step)}
    for key in keys:
        at = [m.value for m in client.get_metric_history(run_id, key) if m.step == best.step]
        if at:
            found[key] = at[-1]
    return found


def child_metric_name(name: str, monitor: str, taken: set[str], run_id: str) -> str:
    """``child/<name>/best/<monitor>``: a valid, unique metric name for one child."""
    safe = UNSAFE.sub("_", name or "").strip(". ") or run_id
    if safe in taken:
        safe = f"{safe}-{run_id[:8]}"
    taken.add(safe)
    return f"child/{safe}/best/{monitor}"


def parent_metrics(
    finished: list[Any], best_of: dict[str, dict[str, float]], best: Any, monitor: str
) -> dict[str, float]:
    """What the parent logs: each finished child's best ``monitor``, the best child's
    ``best/val/*`` and ``best/test/*``."""
    metrics: dict[str, float] = {}
    taken: set[str] = set()
    for run in sorted(finished, key=lambda r: r.info.start_time or 0):
        values = best_of.get(run.info.run_id, {})
        if monitor in values:
            name = child_metric_name(run.info.run_name, monitor, taken, run.info.run_id)
            metrics[name] = values[monitor]
    if best is not None:
        values = best_of[best.info.run_id]
        metrics.update({f"best/{k}": v for k, v in values.items() if k.startswith("val/")})
        tests = best.data.metrics.items()
        metrics.update({f"best/{k}": v for k, v in tests if k.startswith("test/")})
    return metrics


def summary_rows(runs: list[Any], best_of: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per child: name, status, its best epoch's ``val/*`` and its ``test/*``."""
    rows = []
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        row: dict[str, Any] = {
            "run": run.info.run_name,
            "run_id": run.info.run_id,
            "status": run.info.status,
        }
        best = best_of.get(run.info.run_id, {})
        if "best_epoch" in best:
            row["best_epoch"] = int(best["best_epoch"])
        row.update({k: v for k, v in sorted(best.items()) if k.startswith("val/")})
        tests = sorted(run.data.metrics.items())
        row.update({k: v for k, v in tests if k.startswith("test/")})
        rows.append(row)
    return rows
