"""``trainer.diagnostics=true``: look inside a recurrent model once per epoch.

On one fixed batch (the first ``trainer.batch_size`` validation rows of a classifier; other
tasks: the first training batch of epoch 1), after each epoch:

* gate saturation, from the encoder's trace (``Encoder.trace``): per layer and gate type,
  the fraction of real (unpadded) gate values < 0.1 (``left_saturated``) and > 0.9
  (``right_saturated``), both directions together: ``diag/layer0/forget/left_saturated``;
* gradient norms of the loss on that batch, per part: ``diag/grad_norm/embedding``,
  ``diag/grad_norm/encoder/layer0`` ..., ``diag/grad_norm/pooler``, ``diag/grad_norm/head``;
* the gradient norm of the loss with respect to each time step's input (the embedding's
  output), averaged over the batch's real tokens at that step: the vanishing-gradient
  picture, one PNG per epoch (``diagnostics/time_step_gradients_epoch_NNN.png``, log scale)
  and the numbers of every epoch in ``diagnostics/time_step_gradients.json``.

Training is untouched: the model runs in eval mode (no dropout) under a forked RNG, the
training gradients are put back afterwards, and the optimizer is never called, so a run
with diagnostics ends with the same weights as one without.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.training.callbacks import Callback

#: Gate values below / above these are saturated (Karpathy et al. 2015).
LEFT, RIGHT = 0.1, 0.9
_LAYER_SUFFIX = re.compile(r"_l(\d+)(_reverse)?$")  # nn.LSTM's weight_ih_l0, bias_hh_l1_reverse


def diagnostics_for(task: Any, ctx: Any) -> list[Callback]:
    """The run's diagnostics callback when ``trainer.diagnostics`` is on (main process only)."""
    if not getattr(ctx.trainer, "diagnostics", False) or not ctx.job.is_main:
        return []
    return [Diagnostics(task, ctx)]


def saturation(traces: list[Any], mask: Tensor) -> dict[str, float]:
    """Fractions of left- and right-saturated values per layer and gate, over real positions
    (``mask`` [B, T]) of every unit and direction."""
    counts: dict[tuple[int, str], list[float]] = {}
    real = mask.bool().unsqueeze(-1)  # [B, T, 1]
    for trace in traces:
        for gate in trace.gates:
            values = trace.quantities[gate].float()
            inside = real.expand_as(values)
            seen = counts.setdefault((trace.layer, gate), [0.0, 0.0, 0.0])
            seen[0] += float(((values < LEFT) & inside).sum())
            seen[1] += float(((values > RIGHT) & inside).sum())
            seen[2] += float(inside.sum())
    metrics = {}
    for (layer, gate), (left, right, total) in sorted(counts.items()):
        metrics[f"diag/layer{layer}/{gate}/left_saturated"] = left / max(total, 1.0)
        metrics[f"diag/layer{layer}/{gate}/right_saturated"] = right / max(total, 1.0)
    return metrics


def part_of(name: str) -> str:
    """The part a parameter belongs to: ``embedding``, ``encoder/layer<i>`` (from
    ``encoder.layers.<i>.`` or torch's ``_l<i>`` suffix), ``encoder``, ``pooler``, ``head``."""
    parts = name.split(".")
    if parts[0] != "encoder":
        return parts[0]
    if len(parts) > 2 and parts[1] == "layers" and parts[2].isdigit():
        return f"encoder/layer{parts[2]}"
    found = _LAYER_SUFFIX.search(parts[-1])
    return f"encoder/layer{found.group(1)}" if found else "encoder"


def gradient_norms(model: nn.Module) -> dict[str, float]:
    """The L2 norm of the gradient of each part's parameters (those that have one)."""
    squares: dict[str, float] = {}
    for name, param in model.named_parameters():
        if param.grad is not None:
            part = part_of(name)
            squares[part] = squares.get(part, 0.0) + float(param.grad.float().pow(2).sum())
    return {f"diag/grad_norm/{part}": value**0.5 for part, value in squares.items()}


def step_norms(grad: Tensor, mask: Tensor) -> list[float]:
    """Per time step, the mean over rows with a real token there of ||dL/dx[b, t]||."""
    norms = grad.float().norm(dim=-1) * mask.float()  # [B, T]
    rows = mask.float().sum(dim=0).clamp(min=1.0)
    return (norms.sum(dim=0) / rows).tolist()


def plot_step_norms(norms: list[float], epoch: int, path: Path) -> Path:
    """The vanishing-gradient picture: x = time step, y = gradient norm (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 4))
    steps = [t for t, v in enumerate(norms) if v > 0]  # log scale: no zeros
    axis.plot(steps, [norms[t] for t in steps], "-", linewidth=1.2)
    axis.set_yscale("log")
    axis.set_xlabel("time step t (input position)")
    axis.set_ylabel("mean ||dL / dx_t||")
    axis.set_title(f"gradient of the loss w.r.t. each step's input, epoch {epoch}")
    axis.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class Diagnostics(Callback):
    """Saturation, gradient norms and the time-step gradient plot, after every epoch."""

    def __init__(self, task: Any, ctx: Any) -> None:
        self.task, self.ctx = task, ctx
        self.folder = Path(ctx.out_dir) / "diagnostics"
        self.probe: Any = None  # the fixed batch, taken once
        self.history: dict[str, list[float]] = {}  # epoch -> step norms, for the JSON
        self.noted = False  # the "not traceable" line is printed once

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: Any) -> None:
        if self.probe is None:
            self.probe = probe_batch(self.task, self.ctx)
        metrics, norms = self.measure(model)
        self.ctx.tracker.log_metrics(metrics, step=epoch)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.history[str(epoch)] = norms
        (self.folder / "time_step_gradients.json").write_text(json.dumps(self.history))
        plot_step_norms(norms, epoch, self.folder / f"time_step_gradients_epoch_{epoch:03d}.png")
        self.ctx.tracker.log_artifact(self.folder, "diagnostics")

    def measure(self, model: nn.Module) -> tuple[dict[str, float], list[float]]:
        """The metrics and per-step input-gradient norms of ``model`` on the probe batch,
        leaving its mode, gradients and the RNG as they were."""
        device = self.ctx.device
        cuda = [device.index or 0] if device.type == "cuda" else []
        saved = {param: param.grad for param in model.parameters()}
        was_training = model.training
        seen: dict[str, Tensor] = {}
        hook = model.encoder.register_forward_pre_hook(_keep_input(seen), with_kwargs=True)
        try:
            with torch.random.fork_rng(devices=cuda), torch.backends.cudnn.flags(enabled=False):
                model.eval()
                for param in saved:
                    param.grad = None
                summed, count, _ = self.task.loss(model, self.probe, None)
                (summed.float() / max(int(count), 1)).backward()
                metrics = gradient_norms(model)
                metrics.update(self._saturation(model.encoder, seen["x"], seen["mask"]))
            return metrics, step_norms(seen["x"].grad, seen["mask"])
        finally:
            hook.remove()
            model.train(was_training)
            for param, grad in saved.items():
                param.grad = grad

    def _saturation(self, encoder: Any, x: Tensor, mask: Tensor) -> dict[str, float]:
        if not getattr(encoder, "traceable", False):
            if not self.noted:
                print(
                    f"diagnostics: the encoder ({type(encoder).__name__}) has no trace "
                    "(Encoder.trace), so gate saturation is skipped; gradient norms and the "
                    "time-step gradient plot are still logged",
                    flush=True,
                )
                self.noted = True
            return {}
        with torch.no_grad():
            return saturation(encoder.trace(x.detach(), mask), mask)


def _keep_input(seen: dict[str, Tensor]) -> Any:
    """A forward pre-hook that keeps the encoder's input ``x`` (its gradient retained) and
    ``mask``; an input that needs no gradient (frozen embedding) is given one."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        x, rest = (args[0], args[1:]) if args else (kwargs.pop("x"), ())
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        else:
            x.retain_grad()
        seen["x"] = x
        seen["mask"] = rest[0] if rest else kwargs["mask"]
        return (x, *rest), kwargs

    return hook


def probe_batch(task: Any, ctx: Any) -> Any:
    """The fixed batch: the task's ``probe_batch(trainer.batch_size)`` (a classifier's first
    validation rows), else the first training batch of epoch 1 (any task's ``loss`` takes it)."""
    own = getattr(task, "probe_batch", None)
    if callable(own):
        return own(ctx.trainer.batch_size)
    return next(iter(task.train_batches(1, 0).batches))
