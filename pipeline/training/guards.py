"""Stop on a NaN or infinite loss with the step it happened at and the likely causes."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pipeline.errors import PipelineError


class NonFiniteWatch:
    """Finds a NaN or infinite loss with no work per step: any such step makes the epoch's
    running loss sum non-finite, and :meth:`check` reads that sum every
    ``log_every_n_steps`` steps (when the progress display reads it anyway) and at epoch
    end. The message names the steps since the last good read."""

    def __init__(self, start_step: int = 0) -> None:
        self.good = start_step  # the last step at which the sum was read and finite

    def check(self, loss_sum: torch.Tensor, step: int, epoch: int, checkpoint_dir: Path) -> None:
        if math.isfinite(float(loss_sum)):
            self.good = step
            return
        where = (
            f"at step {step}"
            if step == self.good + 1
            else f"between steps {self.good + 1} and {step}"
        )
        last = Path(checkpoint_dir) / "last.pt"
        kept = (
            f"The last good checkpoint, {last}, is kept."
            if last.is_file()
            else "No checkpoint had been written yet."
        )
        raise PipelineError(
            f"The training loss became NaN or infinite {where} of epoch {epoch}; training "
            "stopped. Likely causes: a learning rate too high (lower optimizer.lr), too weak "
            "gradient clipping (trainer.grad_clip), or fp16 overflow (trainer.amp=false). "
            f"{kept}"
        )


def check_finite(train_loss: float, epoch: int, checkpoint_dir: Path) -> None:
    """A NaN or infinite epoch loss stops training with the likely causes."""
    if not math.isfinite(train_loss):
        raise PipelineError(
            f"The training loss became {train_loss} in epoch {epoch}. Likely causes: a "
            "learning rate too high (lower optimizer.lr), too weak gradient clipping "
            "(trainer.grad_clip), or fp16 overflow (trainer.amp=false). The last good "
            f"checkpoint is kept in {checkpoint_dir}."
        )
