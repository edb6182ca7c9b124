"""The module the training steps call: the model itself, wrapped in DistributedDataParallel
under torchrun, compiled where ``trainer.compile`` asks and compiling helps."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.training.context import RunContext


def wrap_model(model: nn.Module, ctx: RunContext) -> nn.Module:
    """The module the steps call: DDP under torchrun, compiled if asked."""
    job, device, net = ctx.job, ctx.device, model
    if job.enabled:
        from torch.nn.parallel import DistributedDataParallel

        if job.rank > 0:  # its own dropout masks (the weights come from rank 0)
            torch.manual_seed(ctx.seed + 7919 * job.rank)
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # trainer.unfreeze=gradual: frozen layers get no gradient, which DDP must expect
            find_unused_parameters=ctx.trainer.unfreeze != "none",
        )
    if ctx.trainer.compile and compiles_well(model, job.is_main):
        net = torch.compile(net, dynamic=True)  # ragged batches: one graph for all lengths
    return net


def compiles_well(model: nn.Module, speaks: bool) -> bool:
    """False (with a warning) for a model with recurrent layers: torch.compile leaves an
    ``nn.LSTM``/``GRU`` to its own cuDNN/oneDNN kernel (a graph break) and a cell loop is
    unrolled over every length, so compiling takes long and gains nothing."""
    recurrent = sorted(
        {type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase | nn.RNNCellBase)}
    )
    if recurrent and speaks:
        print(
            f"warning: trainer.compile=true ignored: the model's recurrent layers "
            f"({', '.join(recurrent)}) run their own fused kernels, which torch.compile "
            "cannot improve on, and compiling them takes minutes. The model runs eagerly; "
            "set trainer.compile=false to silence this.",
            flush=True,
        )
    return not recurrent
