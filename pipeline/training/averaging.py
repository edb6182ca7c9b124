"""Weight averaging (``optimizer.average``): the weights that are validated, tested and saved
as the model are an average of the training weights, which train on unchanged.

* ``ema``: an exponential moving average of the weights after every optimizer step
  (torch's ``AveragedModel`` with ``get_ema_multi_avg_fn``), from the first step.
* ``ntasgd``: non-monotonically triggered averaging (Merity et al. 2017, AWD-LSTM): once
  the monitored validation metric has not improved for ``ntasgd_patience`` epochs, a running
  mean of the weights after every following step (``AveragedModel``'s default average):
  what ``torch.optim.ASGD`` with ``t0`` at that step computes, with any optimizer.

Parameters and buffers (BatchNorm's statistics) are both averaged. A checkpoint's ``model``
holds the averaged weights (so evaluation, serving and ``best.pt`` use them) and its
``average`` the training weights and the count, so a resumed run goes on exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pipeline.config.schemas import OptimizerConfig


class WeightAverage:
    """The averaged copy of ``model`` (none while ``optimizer.average=none`` or before
    NT-ASGD's trigger), updated after each optimizer step by :meth:`step`."""

    def __init__(self, model: nn.Module, config: OptimizerConfig) -> None:
        self.model, self.config = model, config
        self.kind = config.average
        self.averaged: AveragedModel | None = None
        if self.kind == "ema":
            self.start()

    def start(self) -> None:
        """Begin averaging from the current weights."""
        ema = get_ema_multi_avg_fn(self.config.ema_decay) if self.kind == "ema" else None
        self.averaged = AveragedModel(self.model, multi_avg_fn=ema, use_buffers=True)

    def step(self) -> None:
        """After an optimizer step: fold the new weights into the average."""
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)

    def end_epoch(self, bad_epochs: int) -> bool:
        """NT-ASGD's trigger: start averaging after ``ntasgd_patience`` epochs without
        improvement; True when it starts now."""
        if self.kind != "ntasgd" or self.averaged is not None:
            return False
        if bad_epochs < self.config.ntasgd_patience:
            return False
        self.start()
        return True

    @property
    def evaluated(self) -> nn.Module:
        """The module to validate, test and save: the average once there is one."""
        return self.averaged.module if self.averaged is not None else self.model

    def state_dict(self) -> dict[str, Any] | None:
        """The checkpoint's ``average``: the training weights and the count (None: off)."""
        if self.kind == "none":
            return None
        count = int(self.averaged.n_averaged) if self.averaged is not None else 0
        return {
            "kind": self.kind,
            "started": self.averaged is not None,
            "n_averaged": count,
            "training": self.model.state_dict(),
        }

    def restore(self, model_weights: dict[str, Any], state: dict[str, Any] | None) -> None:
        """Load a checkpoint's ``model`` (the averaged weights when ``state`` says averaging
        had started) and ``average`` into the model and the average."""
        if state is None:
            self.model.load_state_dict(model_weights)
            if self.averaged is not None:  # a checkpoint from before averaging: start anew
                self.start()
            return
        self.model.load_state_dict(state["training"])
        if not state.get("started"):
            self.averaged = None
            return
        if self.averaged is None:
            self.start()
        self.averaged.module.load_state_dict(model_weights)
        self.averaged.n_averaged.fill_(int(state["n_averaged"]))

    @torch.no_grad()
    def finish(self) -> None:
        """End of training: the model takes the averaged weights, as best.pt has them."""
        if self.averaged is not None:
            self.model.load_state_dict(self.averaged.module.state_dict())
