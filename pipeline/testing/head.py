"""The kit for head plugins: ``check_head("my_head")``.

A head turns features into logits: a classifier head [B, input_dim] -> [B, num_outputs]
(after the pooler), a sequence head also [B, T, input_dim] -> [B, T, num_outputs] (a
language model's, on every step of the encoder's output). Checks:

* ``config``: a ``ComponentConfig`` dataclass that survives a round trip through OmegaConf;
* ``dims``: [B, input_dim] gives [B, num_outputs] logits;
* ``rows``: a row's logits alone equal its logits inside a batch (eval mode);
* ``sequence``: [B, T, input_dim] gives [B, T, num_outputs], each step's logits from that
  step's features alone. It runs with ``sequence=True``; ``sequence=None`` (the default)
  runs it where the head accepts 3-d features, and skips it where it does not;
* ``gradients``: every trainable parameter, and the features, get a gradient;
* ``eval determinism``: two forward passes in eval mode agree exactly (dropout off);
* ``state dict``: a fresh instance loading the state dict gives the same logits.

Each check runs even when another failed; a broken head is a named failure, never a crash.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pipeline import registry
from pipeline.contracts import Head
from pipeline.testing.report import Report, build, check_config, label, resolve
from pipeline.testing.tensors import (
    close,
    deterministic,
    missing_gradients,
    random_loss,
    same_after_load,
)

BATCH, STEPS = 4, 5


def check_head(
    head: str | type[Head],
    config: Any = None,
    *,
    input_dim: int = 6,
    num_outputs: int = 3,
    sequence: bool | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    **fields: Any,
) -> Report:
    """Check a head against the contract; return a report (``.assert_ok()`` raises).

    ``head`` is a registered name or a class (then pass ``config``); ``fields`` set the
    registered config's fields. It is built as ``cls(config, input_dim, num_outputs)``.
    """
    report = Report("head", label(head))
    found = resolve(report, registry.heads, head, config, fields)
    if found is None:
        return report
    entry, config = found

    def make(build_seed: int) -> Head:
        torch.manual_seed(build_seed)
        return entry.cls(config, input_dim, num_outputs)

    report.run("config", lambda: check_config(config, registry.heads, entry.name))
    what = f"{entry.cls.__qualname__}(config, {input_dim}, {num_outputs})"
    module = build(report, what, lambda: make(seed))
    if module is None:
        return report
    module.eval()
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(BATCH, input_dim, generator=generator)
    steps = torch.randn(BATCH, STEPS, input_dim, generator=generator)

    def run(m: Head) -> dict[str, Tensor]:
        return {"logits": m(features)}

    report.run("dims", lambda: _check_dims(module, features, num_outputs))
    report.run("rows", lambda: _check_rows(module, features, atol, rtol))
    if sequence is None and not _accepts_steps(module, steps):
        report.skipped.append("sequence: the head does not take [B, T, input_dim] features")
    else:
        report.run("sequence", lambda: _check_sequence(module, steps, num_outputs, atol, rtol))
    report.run("gradients", lambda: _check_gradients(make(seed), features, generator))
    report.run("eval determinism", lambda: deterministic(lambda: run(module.eval())))
    report.run("state dict", lambda: same_after_load(module, make(seed + 1), run, atol, rtol))
    return report


def _check_dims(module: Head, features: Tensor, num_outputs: int) -> str | None:
    with torch.no_grad():
        logits = module(features)
    if not isinstance(logits, Tensor):
        return f"forward returned {type(logits).__name__}, expected a Tensor"
    expected = (features.size(0), num_outputs)
    if tuple(logits.shape) != expected:
        return f"logits have shape {tuple(logits.shape)}, expected {expected} ([B, num_outputs])"
    return None


def _check_rows(module: Head, features: Tensor, atol: float, rtol: float) -> str | None:
    with torch.no_grad():
        batch = module(features)
        for row in range(features.size(0)):
            problem = close(module(features[row : row + 1]), batch[row : row + 1], atol, rtol)
            if problem:
                return (
                    f"row {row}'s logits differ alone and inside a batch of {features.size(0)} "
                    f"in eval mode: {problem}. A row's logits must depend on that row only"
                )
    return None


def _accepts_steps(module: Head, steps: Tensor) -> bool:
    """Whether the head takes [B, T, input_dim] features at all (a sequence head)."""
    try:
        with torch.no_grad():
            logits = module(steps)
    except Exception:
        return False
    return isinstance(logits, Tensor) and logits.dim() == 3


def _check_sequence(
    module: Head, steps: Tensor, num_outputs: int, atol: float, rtol: float
) -> str | None:
    with torch.no_grad():
        logits = module(steps)
        expected = (*steps.shape[:2], num_outputs)
        if tuple(logits.shape) != expected:
            return (
                f"logits of [B, T, input_dim] features have shape {tuple(logits.shape)}, "
                f"expected {expected} ([B, T, num_outputs])"
            )
        flat = module(steps.reshape(-1, steps.size(2))).reshape(expected)
    problem = close(flat, logits, atol, rtol)
    if problem:
        return f"a step's logits depend on other steps' features: {problem}"
    return None


def _check_gradients(module: nn.Module, features: Tensor, generator: torch.Generator) -> str | None:
    module.train()
    inputs = features.clone().requires_grad_(True)
    random_loss([module(inputs)], generator).backward()
    if inputs.grad is None or not bool(inputs.grad.abs().sum() > 0):
        return "no gradient reaches the features (a detach, or a constant result)"
    return missing_gradients(module)
