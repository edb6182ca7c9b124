"""One optimisation step: the optimizer (fused where torch has it), backward, clipping, AMP
loss scaling."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from pipeline.config.schemas import OptimizerConfig
from pipeline.model.layers import layer_groups


def parameter_groups(model: nn.Module, cfg: OptimizerConfig) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: one holding every parameter, or with
    ``optimizer.layer_lr_decay`` != 1 one per layer group (``pipeline.model.layers``),
    bottom to top, the top at ``lr`` and each below at the lr above / ``layer_lr_decay``.
    Each such group keeps its ``name`` and ``lr_factor`` (its lr / ``lr``), which the
    epoch schedule and one-cycle scale by, so the ratios hold under every schedule."""
    if cfg.layer_lr_decay == 1.0:
        return [{"params": list(model.parameters())}]
    groups = layer_groups(model)
    top = len(groups) - 1
    return [
        {
            "params": params,
            "name": name,
            "lr_factor": cfg.layer_lr_decay ** (depth - top),
            "lr": cfg.lr * cfg.layer_lr_decay ** (depth - top),
        }
        for depth, (name, params) in enumerate(groups)
    ]


def describe_lrs(optimizer: torch.optim.Optimizer) -> str:
    """``embedding 2.96e-04, encoder.0 7.69e-04, head 2e-03``: each named group's lr."""
    return ", ".join(
        f"{group.get('name', k)} {group['lr']:.3g}"
        for k, group in enumerate(optimizer.param_groups)
    )


def make_optimizer(params, cfg: OptimizerConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW / Adam / SGD, fused where torch supports it on this device. ``params``: the
    parameters, or parameter groups (:func:`parameter_groups`)."""
    params = list(params)
    fused = cfg.fused
    if fused is None:
        fused = device.type in ("cuda", "cpu") and cfg.name in ("adamw", "adam", "sgd")
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.name == "sgd":
        kwargs["momentum"] = cfg.momentum
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[cfg.name]
    if fused:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass  # this torch build has no fused kernel for the device: use foreach
    return cls(params, **kwargs)


def optimizer_step(
    loss: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    grad_clip: float,
    lr_scale: float = 1.0,
) -> None:
    """Backward, clip the gradient norm (after unscaling fp16 gradients), step (with every
    group's lr times ``lr_scale`` for this step only)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if grad_clip > 0:
        clip_gradients(model.parameters(), grad_clip)
    if lr_scale != 1.0:
        lrs = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * lr_scale
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if lr_scale != 1.0:
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr


def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float) -> None:
    """``clip_grad_norm_``, minus its rescaling pass on CPU when nothing needs clipping.

    torch rescales every gradient by ``min(max_norm / (norm + 1e-6), 1)``, a full read and
    write of each gradient even when that factor is exactly 1 (about 3% of a step of the
    seed model). On CPU, reading the norm waits for nothing, so the pass is skipped when
    the factor is 1: the result is bit-identical. On GPUs the check would stall the host,
    so torch's own function runs there.
    """
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return
    if params[0].device.type != "cpu" or not hasattr(nn.utils, "get_total_norm"):  # torch<2.6
        nn.utils.clip_grad_norm_(params, max_norm)
        return
    total = nn.utils.get_total_norm([p.grad for p in params])
    if not float(total) + 1e-6 <= max_norm:  # also NaN / inf: rescale, as torch does
        nn.utils.clip_grads_with_norm_(params, max_norm, total)
