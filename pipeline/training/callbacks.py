"""Callbacks: code that runs at the start or the end of each epoch without the loop knowing
what it is (tracking, a task's text samples, gradual unfreezing...)."""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from pipeline.model.layers import layer_groups


class Callback:
    """Override what you need; the loop calls each hook of every callback in order."""

    def on_epoch_start(self, epoch: int, model: Any) -> None:
        """Before the epoch's first step, and before the rest of a resumed epoch."""

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


class GradualUnfreezing(Callback):
    """``trainer.unfreeze=gradual`` (ULMFiT): in epoch e only the top e layer groups
    (``pipeline.model.layers``) train; the others have ``requires_grad`` off, so they get
    no gradient, no update and no weight decay. Set from the epoch alone at each epoch's
    start, so a resumed epoch trains exactly the groups it did. A parameter frozen by its
    component (a frozen pretrained embedding) stays frozen."""

    def __init__(self, model: nn.Module, speaks: bool = True) -> None:
        self.groups = layer_groups(model)
        self.trainable = {id(p) for p in model.parameters() if p.requires_grad}
        self.speaks = speaks

    def on_epoch_start(self, epoch: int, model: Any) -> None:
        first = max(len(self.groups) - epoch, 0)  # the lowest group that trains
        for depth, (_, params) in enumerate(self.groups):
            for param in params:
                param.requires_grad_(depth >= first and id(param) in self.trainable)
        if not self.speaks or epoch > len(self.groups) or len(self.groups) < 2:
            return
        training = ", ".join(name for name, _ in self.groups[first:])
        frozen = ", ".join(name for name, _ in self.groups[:first]) or "none"
        print(f"epoch {epoch}: training {training}; frozen: {frozen}", flush=True)
