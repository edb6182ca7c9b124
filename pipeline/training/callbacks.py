"""Callbacks: code that runs at the end of each epoch without the loop knowing what it is
(tracking, a task's text samples...)."""

from __future__ import annotations

import time
from typing import Any


class Callback:
    """Override what you need; the loop calls each hook of every callback in order."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: Any) -> None:
        """After the epoch's checkpoints are written and its line printed."""


class LogMetrics(Callback):
    """Send each epoch's metrics to the tracker, at step = epoch (and time it: the logging
    share of the run's time breakdown)."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.seconds = 0.0

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: Any) -> None:
        started = time.perf_counter()
        self.tracker.log_metrics(metrics, step=epoch)
        self.seconds += time.perf_counter() - started
