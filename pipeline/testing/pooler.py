"""The kit for pooler plugins: ``check_pooler("my_pooler")``.

A pooler turns an encoder's output and the mask into one vector per sequence. Checks:

* ``config``: a ``ComponentConfig`` dataclass that survives a round trip through OmegaConf;
* ``dims``: ``output_dim`` is a positive int and the result is [B, output_dim], whether the
  encoder gave ``final`` and ``pooled`` or only ``sequence``;
* ``padding``: a row alone equals the same row inside a right-padded batch whose padding
  positions of ``sequence`` hold large noise (a mean over padding fails here);
* ``empty rows``: zero-length rows, and a batch of them only, pool to finite vectors;
* ``gradients``: every trainable parameter, and the encoder's ``sequence``, get a gradient;
* ``eval determinism``: two forward passes in eval mode agree exactly;
* ``state dict``: a fresh instance loading the state dict gives the same result.

Each check runs even when another failed; a broken pooler is a named failure, never a crash.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pipeline import registry
from pipeline.contracts import EncoderOutput, Pooler
from pipeline.testing.report import Report, build, check_config, label, resolve
from pipeline.testing.tensors import (
    LENGTHS,
    close,
    deterministic,
    mask_of,
    missing_gradients,
    noisy,
    random_loss,
    same_after_load,
)


def check_pooler(
    pooler: str | type[Pooler],
    config: Any = None,
    *,
    input_dim: int = 6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    **fields: Any,
) -> Report:
    """Check a pooler against the contract; return a report (``.assert_ok()`` raises).

    ``pooler`` is a registered name or a class (then pass ``config``); ``fields`` set the
    registered config's fields. The pooler is built as ``cls(config, input_dim)``.
    """
    report = Report("pooler", label(pooler))
    found = resolve(report, registry.poolers, pooler, config, fields)
    if found is None:
        return report
    entry, config = found

    def make(build_seed: int) -> Pooler:
        torch.manual_seed(build_seed)
        return entry.cls(config, input_dim)

    report.run("config", lambda: check_config(config, registry.poolers, entry.name))
    module = build(report, f"{entry.cls.__qualname__}(config, {input_dim})", lambda: make(seed))
    if module is None:
        return report
    module.eval()
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(LENGTHS)
    mask = mask_of(lengths, int(lengths.max()))
    sequence = torch.randn(*mask.shape, input_dim, generator=generator) * mask.unsqueeze(2)

    def run(m: Pooler) -> dict[str, Tensor]:
        return {"result": m(EncoderOutput(sequence), mask)}

    report.run("dims", lambda: _check_dims(module, sequence, mask, generator))
    report.run("padding", lambda: _check_padding(module, sequence, mask, generator, atol, rtol))
    report.run("empty rows", lambda: _check_empty_rows(module, sequence, mask))
    report.run("gradients", lambda: _check_gradients(make(seed), sequence, mask, generator))
    report.run("eval determinism", lambda: deterministic(lambda: run(module.eval())))
    report.run("state dict", lambda: same_after_load(module, make(seed + 1), run, atol, rtol))
    return report


def _check_dims(
    module: Pooler, sequence: Tensor, mask: Tensor, generator: torch.Generator
) -> str | None:
    out_dim = getattr(module, "output_dim", None)
    if not isinstance(out_dim, int) or out_dim < 1:
        return f"output_dim must be a positive int, got {out_dim!r}"
    batch, _, width = sequence.shape
    summaries = torch.randn(batch, width, generator=generator)
    outputs = {
        "sequence only": EncoderOutput(sequence),
        "final and pooled given": EncoderOutput(sequence, final=summaries, pooled=summaries),
    }
    for given, output in outputs.items():
        with torch.no_grad():
            pooled = module(output, mask)
        if not isinstance(pooled, Tensor):
            return f"forward returned {type(pooled).__name__}, expected a Tensor"
        if tuple(pooled.shape) != (batch, out_dim):
            return (
                f"the result ({given}) has shape {tuple(pooled.shape)}, expected "
                f"{(batch, out_dim)} ([B, output_dim])"
            )
    return None


def _check_padding(
    module: Pooler,
    sequence: Tensor,
    mask: Tensor,
    generator: torch.Generator,
    atol: float,
    rtol: float,
) -> str | None:
    with torch.no_grad():
        batch = module(EncoderOutput(noisy(sequence, mask, generator)), mask)
        for row, length in enumerate(mask.sum(1).tolist()):
            if length == 0:
                continue
            alone_mask = mask[row : row + 1, :length]
            alone = module(EncoderOutput(sequence[row : row + 1, :length]), alone_mask)
            problem = close(alone, batch[row : row + 1], atol, rtol)
            if problem:
                return (
                    f"a length-{length} row pools differently alone and inside a padded batch "
                    f"(noise at the padding): {problem}. Pool over real tokens only (the "
                    "mask), never over padding"
                )
    return None


def _check_empty_rows(module: Pooler, sequence: Tensor, mask: Tensor) -> str | None:
    empty = torch.zeros(2, 1, sequence.size(2))
    with torch.no_grad():
        mixed = module(EncoderOutput(sequence), mask)
        only = module(EncoderOutput(empty), torch.zeros(2, 1, dtype=torch.bool))
    rows = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if not torch.isfinite(mixed[rows]).all():
        return "a zero-length row in a batch pools to non-finite values"
    if not torch.isfinite(only).all():
        return "a batch of zero-length rows pools to non-finite values"
    return None


def _check_gradients(
    module: Pooler, sequence: Tensor, mask: Tensor, generator: torch.Generator
) -> str | None:
    module.train()
    inputs = sequence.clone().requires_grad_(True)
    random_loss([module(EncoderOutput(inputs), mask)], generator).backward()
    if inputs.grad is None or not bool(inputs.grad.abs().sum() > 0):
        return "no gradient reaches the encoder's sequence (a detach, or a constant result)"
    return missing_gradients(module)
