"""The closing summary of a run: the best epoch and why training stopped, the metrics, where
the time went (data, train, eval, logging), the outputs and where to see the run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: The phases of a run's time, in the order the summary shows them.
PHASES = ("data", "train", "eval", "logging")


@dataclass
class Phases:
    """Seconds per phase of a run, added up where each phase happens (``perf_counter``)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        """Add the time the block takes to ``phase``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - started)

    def describe(self, total: float) -> str:
        """``data 3.1s · train 40.2s · eval 2.0s · logging 1.5s · other 0.9s``: ``other``
        is what the phases leave of ``total`` (start-up, imports, building the model)."""
        from pipeline.training.progress import duration

        shown = [(p, self.seconds[p]) for p in PHASES if p in self.seconds]
        other = total - sum(s for _, s in shown)
        if other >= 0.05:
            shown.append(("other", other))
        return " · ".join(f"{p} {duration(s)}" for p, s in shown)


def stop_reason(
    epochs: int, max_epochs: int, stopped_early: bool = False, bad_epochs: int = 0
) -> str:
    """Why training ended, in words."""
    if stopped_early:
        epochs_word = "epoch" if bad_epochs == 1 else "epochs"
        return f"early stopping after {bad_epochs} {epochs_word} without improvement"
    if epochs >= max_epochs:
        return f"max epochs reached ({max_epochs})"
    return f"interrupted after epoch {epochs} of {max_epochs}"


def note_training(result: Any, book: Any, max_epochs: int, logging: float) -> None:
    """Note in ``result`` (a ``RunResult``) what the summary says of training (the
    ``EpochBook`` ``book``): the best epoch, why it ended, where its time went."""
    epochs = int(book.history[-1]["epoch"]) if book.history else 0
    if book.best_epoch:
        value = book.best_value
        result.best_epoch = f"{book.best_epoch} of {epochs} ({book.monitor} {value:.4f})"
    result.stop_reason = stop_reason(epochs, max_epochs, book.stopped_early, book.bad_epochs)
    result.phases.add("train", book.train_seconds)
    result.phases.add("eval", book.eval_seconds)
    result.phases.add("logging", logging)


def summary_lines(run: Any) -> list[str]:
    """The summary of ``run`` (a ``pipeline.run.runner.RunResult``), a line per fact."""
    from pipeline.training.progress import duration

    lines = ["", f"== run finished in {duration(run.seconds)} =="]
    if run.best_epoch:
        lines.append(f"  {'best epoch':<14} {run.best_epoch}")
    if run.stop_reason:
        lines.append(f"  {'stopped':<14} {run.stop_reason}")
    lines += [f"  {k:<14} {v:.4f}" for k, v in sorted(run.metrics.items())]
    if run.phases is not None:
        lines.append(f"  {'time':<14} {run.phases.describe(run.seconds)}")
    lines.append(f"  {'outputs':<14} {run.output_dir}")
    if run.best_checkpoint:
        lines.append(f"  {'checkpoint':<14} {run.best_checkpoint}")
    if run.run_id:
        lines.append(f"  {'mlflow run':<14} {run.run_id} ({run.tracking})")
        lines.append(f"  {'open the UI':<14} {run.ui_command}")
    return lines
