"""The kit for task plugins: ``check_task(task, model)`` on a prepared task.

It checks what the one training loop relies on (see ``pipeline.contracts.Task``):

* ``declares``: ``metric_names`` names ``train/*`` and ``val/*`` metrics; ``unit`` is set;
* ``batches``: ``train_batches(epoch, 0)`` gives ``steps`` batches, the same ones every
  time it is asked (what makes resume exact);
* ``resume``: ``train_batches(epoch, k)`` gives exactly batches ``k + 1`` onward;
* ``loss``: ``loss`` returns a finite scalar tensor with a gradient, a positive item count,
  and a state that goes back in;
* ``metrics``: ``train_metrics`` gives ``train/*`` floats; ``evaluate`` on ``validation``
  gives finite floats that, prefixed ``val/``, are among ``metric_names``; and ``{}`` for a
  split the data does not have;
* ``checkpoint``: ``checkpoint_extra`` is a dict a checkpoint can hold (``weights_only``).

Each check runs even when another failed; the report names every failure. A task whose
method raises (or calls ``sys.exit``) fails that check, named; the kit itself never raises.
"""

from __future__ import annotations

import io
import itertools
import math
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.testing.report import Report


class TaskReport(Report):
    """The outcome of :func:`check_task` (a :class:`~pipeline.testing.report.Report`)."""

    def __init__(self, name: str = "task") -> None:
        super().__init__("task", name)


def check_task(task: Any, model: nn.Module, epoch: int = 1) -> TaskReport:
    """Run every check on ``task`` (already prepared: ``prepare`` gave ``model``)."""
    report = TaskReport(type(task).__name__)
    report.run("declares", lambda: _check_declares(task))
    report.run("batches", lambda: _check_batches(task, epoch))
    report.run("resume", lambda: _check_resume(task, epoch))
    report.run("loss", lambda: _check_loss(task, model, epoch))
    report.run("metrics", lambda: _check_metrics(task, model))
    report.run("checkpoint", lambda: _check_checkpoint(task))
    return report


def _check_declares(task: Any) -> str | None:
    names = getattr(task, "metric_names", None)
    if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
        return f"metric_names must be a tuple of strings, got {names!r}"
    if not any(n.startswith("val/") for n in names) or "train/loss" not in names:
        return f"metric_names must include train/loss and val/* metrics, got {names}"
    if not isinstance(getattr(task, "unit", None), str) or not task.unit:
        return "unit (what a step counts, e.g. 'samples') is not set"
    return None


def _fingerprint(batch: Any) -> list[Any]:
    """The tensors and numbers in a batch, flattened, for comparing two batches."""
    if isinstance(batch, Tensor):
        return [batch.detach().cpu()]
    if isinstance(batch, (list, tuple)):
        return [x for item in batch for x in _fingerprint(item)]
    if isinstance(batch, dict):
        return [x for key in sorted(batch) for x in _fingerprint(batch[key])]
    if hasattr(batch, "__dict__"):
        return _fingerprint(vars(batch))
    return [batch]


def _same(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    return all(
        torch.equal(x, y) if isinstance(x, Tensor) and isinstance(y, Tensor) else x == y
        for x, y in zip(a, b, strict=True)
    )


def _all_batches(task: Any, epoch: int, start: int) -> tuple[int, list[list[Any]]]:
    epoch_batches = task.train_batches(epoch, start)
    steps = epoch_batches.steps
    if not isinstance(steps, int):
        raise TypeError(f"EpochBatches.steps must be an int, got {steps!r}")
    # One batch more than announced at most: an endless iterator must not hang the kit.
    batches = itertools.islice(epoch_batches.batches, max(steps, 0) + 1)
    return steps, [_fingerprint(b) for b in batches]


def _check_batches(task: Any, epoch: int) -> str | None:
    steps, first = _all_batches(task, epoch, 0)
    if steps < 1 or len(first) != steps:
        return f"train_batches({epoch}, 0) says {steps} steps but gave {len(first)} batches"
    _, again = _all_batches(task, epoch, 0)
    if not all(_same(a, b) for a, b in zip(first, again, strict=True)):
        return f"train_batches({epoch}, 0) gave other batches the second time it was asked"
    return None


def _check_resume(task: Any, epoch: int) -> str | None:
    steps, whole = _all_batches(task, epoch, 0)
    start = steps // 2
    _, tail = _all_batches(task, epoch, start)
    if len(tail) != steps - start or not all(
        _same(a, b) for a, b in zip(whole[start:], tail, strict=True)
    ):
        return f"train_batches({epoch}, {start}) is not the epoch's batches from {start + 1} on"
    return None


def _check_loss(task: Any, model: nn.Module, epoch: int) -> str | None:
    model.train()
    batches = iter(task.train_batches(epoch, 0).batches)
    summed, count, state = task.loss(model, next(batches), None)
    if not isinstance(summed, Tensor) or summed.dim() != 0 or not summed.requires_grad:
        return f"loss must return a scalar tensor with a gradient first, got {summed!r}"
    if not math.isfinite(summed.item()):
        return f"the summed loss is not finite: {summed.item()}"
    if not isinstance(count, int) or count < 1:
        return f"loss must return the batch's item count (an int >= 1) second, got {count!r}"
    second = next(batches, None)
    if second is not None:  # the state it returned goes back in
        task.loss(model, second, state)
    return None


def _check_metrics(task: Any, model: nn.Module) -> str | None:
    train = task.train_metrics(0.5)
    if not train or not all(k.startswith("train/") for k in train):
        return f"train_metrics must give train/* metrics, got {sorted(train)}"
    val = task.evaluate(model, "validation")
    bad = {k: v for k, v in val.items() if not isinstance(v, float) or not math.isfinite(v)}
    if not val or bad:
        return f"evaluate(model, 'validation') must give finite floats, got {val}"
    unknown = sorted(f"val/{k}" for k in val if f"val/{k}" not in task.metric_names)
    if unknown:
        return f"evaluate gives {unknown}, which metric_names does not declare"
    if task.evaluate(model, "no_such_split") != {}:
        return "evaluate must give {} for a split the data does not have"
    return None


def _check_checkpoint(task: Any) -> str | None:
    extra = task.checkpoint_extra()
    if not isinstance(extra, dict):
        return f"checkpoint_extra must be a dict, got {type(extra).__name__}"
    buffer = io.BytesIO()
    torch.save(extra, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except Exception as error:
        return f"checkpoint_extra holds what weights_only loading refuses: {error}"
    return None
