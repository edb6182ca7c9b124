"""The EpochBook: what happened each epoch, which was best, when to stop, and the two
checkpoints that follow from it (``last.pt`` every epoch, ``best.pt`` when the monitored
metric improves). Modelled on AllenNLP's ``MetricTracker``: one small object whose state
(best, patience) goes into ``last.pt`` and comes back on resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.model.checkpoint import Checkpoint


def improved(value: float, best: float, mode: str) -> bool:
    """Whether ``value`` beats ``best`` (``mode``: max or min); NaN never does."""
    if math.isnan(best):
        return not math.isnan(value)
    return value > best if mode == "max" else value < best


@dataclass
class EpochBook:
    monitor: str  # the validation metric that picks the best epoch
    mode: str = "max"  # max | min
    patience: int = 0  # epochs without improvement before stopping; 0 = never
    checkpoint_dir: Path = Path(".")
    writes: bool = True  # only one process of a torchrun job writes checkpoints
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    best_value: float = float("nan")
    best_epoch: int = 0
    bad_epochs: int = 0
    best_path: Path | None = None
    last_path: Path | None = None
    stopped_early: bool = False
    # This process's seconds in the training steps and in validation (the run's time
    # breakdown); not saved in checkpoints.
    train_seconds: float = 0.0
    eval_seconds: float = 0.0

    def record(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Add an epoch's metrics; return whether it is the best so far."""
        if self.monitor not in metrics:
            raise ConfigError(
                f"trainer.monitor={self.monitor!r} is not a metric. Choose one of: "
                f"{', '.join(sorted(metrics))}."
            )
        self.history.append({"epoch": epoch, **metrics})
        value = metrics[self.monitor]
        is_best = improved(value, self.best_value, self.mode)
        if is_best:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return is_best

    @property
    def should_stop(self) -> bool:
        return bool(self.patience and self.bad_epochs >= self.patience)

    def save(self, checkpoint: Checkpoint, is_best: bool) -> None:
        """Write ``best.pt`` (when best) and then ``last.pt``, each atomically.

        ``best.pt`` goes first: a process killed between the two writes leaves a ``last.pt``
        of the previous epoch, so a resumed run repeats this epoch and the best model is
        never lost (the other order left a ``last.pt`` naming a ``best.pt`` never written).
        """
        self.last_path = self.checkpoint_dir / "last.pt"
        if is_best:
            self.best_path = self.checkpoint_dir / "best.pt"
        if not self.writes:
            return
        if is_best:
            checkpoint.save(self.best_path)
        checkpoint.save(self.last_path)

    def stop_message(self) -> str:
        return (
            f"early stopping: {self.monitor} did not improve for {self.bad_epochs} epochs "
            f"(best {self.best_value:.4f} at epoch {self.best_epoch})"
        )

    def restore(self, history: list[dict[str, float]], point: Any) -> None:
        """Take back the state saved in ``last.pt`` (its history and resume point)."""
        self.history = list(history)
        self.best_value, self.best_epoch = point.best_value, point.best_epoch
        self.bad_epochs = point.bad_epochs
        if (self.checkpoint_dir / "best.pt").is_file():
            self.best_path = self.checkpoint_dir / "best.pt"

    def best_metrics(self) -> dict[str, float]:
        """The best epoch's metrics (empty before any epoch)."""
        for entry in self.history:
            if entry.get("epoch") == self.best_epoch:
                return {k: v for k, v in entry.items() if k != "epoch"}
        return {}
