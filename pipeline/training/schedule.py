"""The learning rate: per epoch (step decay, reduction on a plateau) or per optimizer step.

``optimizer.schedule=epoch`` (the default): lr(epoch) = lr * decay ** max(epoch -
decay_after, 0) * plateau_factor ** plateaus, where ``plateaus`` counts the epochs whose
validation metric did not improve. Epochs count from 1, so with decay_after=4 epochs 1-4
run at the full lr and epoch 5 at lr * decay, as in Zaremba et al. (2014).

The other schedules are torch's own schedulers, stepped after every optimizer step over
the whole run (``max_epochs`` x the steps of an epoch), with ``lr`` as the peak: onecycle
(``OneCycleLR``), cosine (``CosineAnnealingLR``, after a ``LinearLR`` warmup if any),
linear_warmup (``LambdaLR``: up over the warmup, then down to 0) and slanted_triangular
(``LambdaLR``, Howard & Ruder 2018). Their state (and its length: extending
``max_epochs`` on resume keeps the saved curve and then holds its last lr) is saved with
the checkpoint, so a resumed run follows the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler

from pipeline.config.schemas import OptimizerConfig


class EpochSchedule:
    """Sets the optimizer's lr at the start of each epoch, or after each step (``step``)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        config: OptimizerConfig,
        total_steps: Callable[[], int] | None = None,
    ) -> None:
        self.optimizer, self.config = optimizer, config
        self.plateaus = 0
        self.per_step: lr_scheduler.LRScheduler | None = None
        self.total = 0
        if config.schedule != "epoch":
            if total_steps is None:
                raise ValueError(f"optimizer.schedule={config.schedule} needs the total steps")
            self.total = max(int(total_steps()), 1)
            self.per_step = step_scheduler(optimizer, config, self.total)

    def lr(self, epoch: int) -> float:
        c = self.config
        return c.lr * c.decay ** max(epoch - c.decay_after, 0) * c.plateau_factor**self.plateaus

    def start_epoch(self, epoch: int) -> float:
        if self.per_step is not None:
            return float(self.optimizer.param_groups[-1]["lr"])  # the top layer's
        lr = self.lr(epoch)
        for group in self.optimizer.param_groups:  # lr_factor: optimizer.layer_lr_decay
            group["lr"] = lr * group.get("lr_factor", 1.0)
        return lr

    def step(self) -> None:
        """After an optimizer step: the next step's lr (held at the end of the curve)."""
        if self.per_step is not None and self.per_step.last_epoch < self.total - 1:
            self.per_step.step()

    def end_epoch(self, improved: bool) -> None:
        if not improved and self.config.plateau_factor < 1.0:
            self.plateaus += 1

    def state_dict(self) -> dict[str, Any]:
        if self.per_step is None:
            return {"plateaus": self.plateaus}
        return {
            "plateaus": self.plateaus,
            "per_step": self.per_step.state_dict(),
            "total": self.total,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateaus = int(state.get("plateaus", 0))
        if self.per_step is not None and state.get("per_step") is not None:
            self.per_step.load_state_dict(state["per_step"])
            self.total = int(state.get("total", self.total))


def warmup_steps(config: OptimizerConfig, total: int) -> int:
    """The warmup's optimizer steps (``warmup_steps``, else ``warmup_ratio`` of ``total``),
    less than ``total``."""
    steps = config.warmup_steps or round(config.warmup_ratio * total)
    return min(steps, total - 1)


def step_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimizerConfig, total: int
) -> lr_scheduler.LRScheduler:
    """Torch's scheduler for ``config.schedule`` over ``total`` optimizer steps."""
    warmup = warmup_steps(config, total)
    if total < 2:  # a run of one step has no curve: it runs at lr
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if config.schedule == "onecycle":
        rise = warmup or round(0.3 * total)  # torch's pct_start=0.3 without a warmup
        return lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[config.lr * g.get("lr_factor", 1.0) for g in optimizer.param_groups],
            total_steps=total,
            pct_start=min((rise + 1) / total, 1.0),  # the peak at step ``rise`` (from 0)
            cycle_momentum=False,  # the optimizer's momentum / betas stay as configured
        )
    if config.schedule == "cosine":
        if not warmup:
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - 1)
        rise = lr_scheduler.LinearLR(optimizer, 1.0 / (warmup + 1), 1.0, total_iters=warmup)
        fall = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - 1 - warmup, 1))
        return lr_scheduler.SequentialLR(optimizer, [rise, fall], milestones=[warmup])
    if config.schedule == "linear_warmup":
        return lr_scheduler.LambdaLR(optimizer, LinearWarmup(warmup, total))
    if config.schedule == "slanted_triangular":
        return lr_scheduler.LambdaLR(
            optimizer, SlantedTriangular(total, config.cut_frac, config.ratio)
        )
    raise ValueError(f"unknown optimizer.schedule {config.schedule!r}")


class LinearWarmup:
    """Factor of lr at step t (from 0): (t + 1) / (warmup + 1) up to the peak at ``warmup``,
    then linearly down to 0 at the last step (``total - 1``)."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return (t + 1) / (self.warmup + 1)
        return max(0.0, (self.total - 1 - t) / max(self.total - 1 - self.warmup, 1))


class SlantedTriangular:
    """ULMFiT's slanted triangular rate (Howard & Ruder 2018, eq. 3) as a factor of lr:
    up over ``cut = floor(total * cut_frac)`` steps, then down; lowest lr / ``ratio``."""

    def __init__(self, total: int, cut_frac: float, ratio: float) -> None:
        self.total, self.ratio = total, ratio
        self.cut = max(math.floor((total - 1) * cut_frac), 1)

    def __call__(self, t: int) -> float:
        if t < self.cut:
            p = t / self.cut
        else:
            p = 1 - (t - self.cut) / max(self.total - 1 - self.cut, 1)
        return (1 + max(p, 0.0) * (self.ratio - 1)) / self.ratio
