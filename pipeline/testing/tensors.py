"""Tensor helpers the kits share: masks, closeness in words, gradients, state dicts."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

#: Lengths of the kits' test batch: a full row, shorter ones, a single token, an empty row.
LENGTHS = (7, 4, 1, 0)


def mask_of(lengths: Tensor, width: int) -> Tensor:
    """A right-padded mask [B, T] for ``lengths`` [B]."""
    return torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)


def close(a: Tensor, b: Tensor, atol: float, rtol: float) -> str | None:
    """None when close, else a short description of the largest difference."""
    if a.shape != b.shape:
        return f"shapes {tuple(a.shape)} and {tuple(b.shape)} differ"
    if torch.allclose(a, b, atol=atol, rtol=rtol):
        return None
    return f"max abs difference {float((a - b).abs().max()):.3g} (atol {atol}, rtol {rtol})"


def noisy(x: Tensor, mask: Tensor, generator: torch.Generator) -> Tensor:
    """``x`` with large noise at its padding positions (``~mask``)."""
    out = x.clone()
    out[~mask] = 100 * torch.randn(int((~mask).sum()), *x.shape[2:], generator=generator)
    return out


def missing_gradients(module: nn.Module) -> str | None:
    """After a backward pass: which trainable parameters got no (or an all-zero) gradient."""
    missing = [
        name
        for name, p in module.named_parameters()
        if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
    ]
    if missing:
        return f"no gradient reaches {', '.join(missing)} (unused parameters, or a detach)"
    return None


def random_loss(tensors: Iterable[Tensor], generator: torch.Generator) -> Tensor:
    """A loss that every element of every floating tensor influences."""
    return sum(
        (t * torch.randn(t.shape, generator=generator)).sum()
        for t in tensors
        if t.is_floating_point()
    )


def deterministic(run: Callable[[], dict[str, Tensor]]) -> str | None:
    """Two calls of ``run`` (eval mode, no grad) give exactly the same tensors."""
    with torch.no_grad():
        first, second = run(), run()
    for name, tensor in first.items():
        if not torch.equal(tensor, second[name]):
            return f"two eval-mode passes give different {name} (dropout left on in eval?)"
    return None


def same_after_load(
    module: nn.Module,
    fresh: nn.Module,
    run: Callable[[nn.Module], dict[str, Tensor]],
    atol: float,
    rtol: float,
) -> str | None:
    """A fresh instance loading ``module``'s state dict gives the same outputs in eval."""
    fresh.load_state_dict(module.state_dict())
    module.eval()
    fresh.eval()
    with torch.no_grad():
        expected, got = run(module), run(fresh)
    for name, tensor in expected.items():
        problem = close(tensor, got[name], atol, rtol)
        if problem:
            return f"a fresh instance loading the state dict gives another {name}: {problem}"
    return None
