"""The kit for embedding plugins: ``check_embedding("my_embedding")``.

An embedding turns token ids [B, T] into vectors [B, T, output_dim]. Checks:

* ``config``: a ``ComponentConfig`` dataclass that survives a round trip through OmegaConf;
* ``dims``: ``output_dim`` is a positive int and the result is [B, T, output_dim];
* ``padding``: a row alone equals the same row inside a batch padded with ``pad_id`` (every
  real position, in eval mode);
* ``gradients``: every trainable parameter gets a gradient (frozen ones are left out);
* ``eval determinism``: two forward passes in eval mode agree exactly (dropout off);
* ``state dict``: a fresh instance loading the state dict gives the same vectors;
* ``weight``: the ``weight`` property (for tying) is None or a [vocab_size, output_dim] table.

An embedding with ``uses_vocabulary = True`` is built with ``vocabulary=`` (None unless you
pass one: how a model is rebuilt from a checkpoint). Each check runs even when another
failed; a broken embedding is a named failure, never a crash.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pipeline import registry
from pipeline.contracts import Embedding
from pipeline.testing.report import Report, build, check_config, label, resolve
from pipeline.testing.tensors import (
    close,
    deterministic,
    mask_of,
    missing_gradients,
    random_loss,
    same_after_load,
)

#: Lengths of the test batch: a full row, shorter ones, a single token.
LENGTHS = (7, 4, 1)


def check_embedding(
    embedding: str | type[Embedding],
    config: Any = None,
    *,
    vocab_size: int = 20,
    pad_id: int = 0,
    vocabulary: Any = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    **fields: Any,
) -> Report:
    """Check an embedding against the contract; return a report (``.assert_ok()`` raises).

    ``embedding`` is a registered name or a class (then pass ``config``); ``fields`` set the
    registered config's fields. It is built as ``cls(config, vocab_size, pad_id)``.
    """
    report = Report("embedding", label(embedding))
    found = resolve(report, registry.embeddings, embedding, config, fields)
    if found is None:
        return report
    entry, config = found

    def make(build_seed: int) -> Embedding:
        torch.manual_seed(build_seed)
        if getattr(entry.cls, "uses_vocabulary", False):
            return entry.cls(config, vocab_size, pad_id, vocabulary=vocabulary)
        return entry.cls(config, vocab_size, pad_id)

    report.run("config", lambda: check_config(config, registry.embeddings, entry.name))
    what = f"{entry.cls.__qualname__}(config, {vocab_size}, {pad_id})"
    module = build(report, what, lambda: make(seed))
    if module is None:
        return report
    module.eval()
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(LENGTHS)
    mask = mask_of(lengths, int(lengths.max()))
    real = [i for i in range(vocab_size) if i != pad_id]
    picks = torch.randint(len(real), mask.shape, generator=generator)
    ids = torch.tensor(real)[picks].masked_fill(~mask, pad_id)

    def run(m: Embedding) -> dict[str, Tensor]:
        return {"vectors": m(ids)}

    report.run("dims", lambda: _check_dims(module, ids))
    report.run("padding", lambda: _check_padding(module, ids, lengths, atol, rtol))
    report.run("gradients", lambda: _check_gradients(make(seed), ids, generator))
    report.run("eval determinism", lambda: deterministic(lambda: run(module.eval())))
    report.run("state dict", lambda: same_after_load(module, make(seed + 1), run, atol, rtol))
    report.run("weight", lambda: _check_weight(module, vocab_size))
    return report


def _check_dims(module: Embedding, ids: Tensor) -> str | None:
    out_dim = getattr(module, "output_dim", None)
    if not isinstance(out_dim, int) or out_dim < 1:
        return f"output_dim must be a positive int, got {out_dim!r}"
    with torch.no_grad():
        vectors = module(ids)
    if not isinstance(vectors, Tensor):
        return f"forward returned {type(vectors).__name__}, expected a Tensor"
    expected = (*ids.shape, out_dim)
    if tuple(vectors.shape) != expected:
        return f"the vectors have shape {tuple(vectors.shape)}, expected {expected}"
    if not vectors.is_floating_point():
        return f"the vectors are {vectors.dtype}, expected floating point"
    return None


def _check_padding(
    module: Embedding, ids: Tensor, lengths: Tensor, atol: float, rtol: float
) -> str | None:
    with torch.no_grad():
        batch = module(ids)
        for row, length in enumerate(lengths.tolist()):
            alone = module(ids[row : row + 1, :length])
            problem = close(alone, batch[row : row + 1, :length], atol, rtol)
            if problem:
                return (
                    f"a length-{length} row's vectors differ alone and inside a batch padded "
                    f"with pad_id: {problem}. Padding must never change a real token's vector"
                )
    return None


def _check_gradients(module: Embedding, ids: Tensor, generator: torch.Generator) -> str | None:
    module.train()
    if not any(p.requires_grad for p in module.parameters()):
        return None  # frozen by its config (or parameter-free): nothing to train
    random_loss([module(ids)], generator).backward()
    return missing_gradients(module)


def _check_weight(module: Embedding, vocab_size: int) -> str | None:
    weight = module.weight
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        return f"weight must be None or a Tensor, got {type(weight).__name__}"
    expected = (vocab_size, module.output_dim)
    if tuple(weight.shape) != expected:
        return (
            f"weight has shape {tuple(weight.shape)}, expected {expected} "
            "([vocab_size, output_dim], the table a language model's head ties to), or None"
        )
    return None
