"""The learning rate per epoch: step decay after N epochs and reduction on a plateau.

lr(epoch) = lr * decay ** max(epoch - decay_after, 0) * plateau_factor ** plateaus, where
``plateaus`` counts the epochs whose validation metric did not improve. Epochs count
from 1, so with decay_after=4 epochs 1-4 run at the full lr and epoch 5 at lr * decay,
as in Zaremba et al. (2014).
"""

from __future__ import annotations

import torch

from pipeline.config.schemas import OptimizerConfig


class EpochSchedule:
    """Sets the optimizer's lr at the start of each epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: OptimizerConfig) -> None:
        self.optimizer, self.config = optimizer, config
        self.plateaus = 0

    def lr(self, epoch: int) -> float:
        c = self.config
        return c.lr * c.decay ** max(epoch - c.decay_after, 0) * c.plateau_factor**self.plateaus

    def start_epoch(self, epoch: int) -> float:
        lr = self.lr(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def end_epoch(self, improved: bool) -> None:
        if not improved and self.config.plateau_factor < 1.0:
            self.plateaus += 1

    def state_dict(self) -> dict[str, int]:
        return {"plateaus": self.plateaus}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.plateaus = int(state["plateaus"])
