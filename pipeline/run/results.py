"""A run's results as the tracker records them, once, at one step.

Per epoch the loop logs ``train/*`` and ``val/*`` at step = epoch (1, 2, ...); MLflow's runs
list and compare view show a metric's LAST value, which is the last epoch's. So the epoch
``trainer.monitor`` chose (the one ``best.pt`` holds and the test split is measured on) is
logged again as ``best/val/*``, beside ``test/*`` and ``best_epoch``, all at
:data:`~pipeline.tracking.tracker.RESULT_STEP`: one point each, comparable as bars, and
linked to the model the task logs afterwards at that same step.
"""

from __future__ import annotations

from typing import Any

from pipeline.tracking.tracker import RESULT_STEP


def best_values(book: Any) -> dict[str, float]:
    """The best epoch's validation metrics, named ``best/val/*`` (empty before any epoch)."""
    return {f"best/{k}": v for k, v in book.best_metrics().items() if k.startswith("val/")}


def results(book: Any, test: dict[str, float]) -> dict[str, float]:
    """What a run reports: ``test/*``, ``best/val/*`` and ``best_epoch``."""
    return {**test, **best_values(book), "best_epoch": float(book.best_epoch)}


def log_results(tracker: Any, book: Any, test: dict[str, float]) -> None:
    """Log the run's results before the task logs its model, so the model links them."""
    tracker.log_metrics(results(book, test), step=RESULT_STEP)
