"""The kit for embedding plugins: ``check_embedding("my_embedding")``.

An embedding turns token ids [B, T] into vectors [B, T, output_dim]. Checks:

* ``config``: a ``ComponentConfig`` dataclass that survives a round trip through OmegaConf;
* ``dims``: ``output_dim`` is a positive int and the result is [B, T, output_dim];
* ``padding``: a row alone equals the same row inside a batch padded with ``pad_id`` (every
  real position, in eval mode);
* ``gradients``: every trainable parameter gets a gradient (frozen ones are left out);
* ``eval determinism``: two forward passes in eval mode agree exactly (dropout off);
* ``state dict``: a fresh instance loading the state dict gives the same vectors;
* ``weight``: the ``weight`` property (for tying) is None or a [vocab_size, output_dim] table
  (a character-aware embedding's word table may be narrower: the LM head projects to it);
* ``characters`` (character-aware embeddings only): the same word ids with other characters
  give other vectors.

An embedding with ``uses_vocabulary = True`` is built with ``vocabulary=`` (None unless you
pass one: how a model is rebuilt from a checkpoint). One with ``uses_characters = True`` is
built with ``num_chars=`` and called as ``embedding(ids, chars)``: chars [B, T, L] holds each
word's random character ids (1 .. num_chars - 1) right-padded with 0, and all 0 at padded
words; its ``padding`` check also compares every word embedded alone (no character padding)
with the same word inside the batch (padded to the batch's longest word).

Each check runs even when another failed; a broken embedding is a named failure, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
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
#: The longest word a character-aware embedding is given, in characters.
WORD_LENGTH = 6


def check_embedding(
    embedding: str | type[Embedding],
    config: Any = None,
    *,
    vocab_size: int = 20,
    pad_id: int = 0,
    vocabulary: Any = None,
    num_chars: int = 12,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    **fields: Any,
) -> Report:
    """Check an embedding against the contract; return a report (``.assert_ok()`` raises).

    ``embedding`` is a registered name or a class (then pass ``config``); ``fields`` set the
    registered config's fields. It is built as ``cls(config, vocab_size, pad_id)`` (plus
    ``num_chars=`` for a character-aware one).
    """
    report = Report("embedding", label(embedding))
    found = resolve(report, registry.embeddings, embedding, config, fields)
    if found is None:
        return report
    entry, config = found
    characters = bool(getattr(entry.cls, "uses_characters", False))

    def make(build_seed: int) -> Embedding:
        torch.manual_seed(build_seed)
        extra: dict[str, Any] = {"num_chars": num_chars} if characters else {}
        if getattr(entry.cls, "uses_vocabulary", False):
            extra["vocabulary"] = vocabulary
        return entry.cls(config, vocab_size, pad_id, **extra)

    report.run("config", lambda: check_config(config, registry.embeddings, entry.name))
    chars_arg = ", num_chars=" + str(num_chars) if characters else ""
    what = f"{entry.cls.__qualname__}(config, {vocab_size}, {pad_id}{chars_arg})"
    module = build(report, what, lambda: make(seed))
    if module is None:
        return report
    module.eval()
    generator = torch.Generator().manual_seed(seed)
    batch = _batch(vocab_size, pad_id, num_chars if characters else 0, generator)

    def run(m: Embedding) -> dict[str, Tensor]:
        return {"vectors": batch.embed(m)}

    report.run("dims", lambda: _check_dims(module, batch))
    report.run("padding", lambda: _check_padding(module, batch, atol, rtol))
    report.run("gradients", lambda: _check_gradients(make(seed), batch, generator))
    report.run("eval determinism", lambda: deterministic(lambda: run(module.eval())))
    report.run("state dict", lambda: same_after_load(module, make(seed + 1), run, atol, rtol))
    report.run("weight", lambda: _check_weight(module, vocab_size, characters))
    if characters:
        report.run("characters", lambda: _check_characters(module, batch, num_chars))
    return report


@dataclass
class Batch:
    """The kit's right-padded test batch: ids [B, T], their lengths, and for a
    character-aware embedding chars [B, T, L] (None otherwise)."""

    ids: Tensor
    lengths: Tensor
    chars: Tensor | None

    def embed(
        self, module: Embedding, row: slice = slice(None), steps: int | None = None
    ) -> Tensor:
        """The vectors of ``ids[row, :steps]`` (and their characters, cut to the longest)."""
        ids = self.ids[row, :steps]
        if self.chars is None:
            return module(ids)
        chars = self.chars[row, :steps]
        longest = max(int((chars != 0).sum(dim=2).max()), 1)
        return module(ids, chars[:, :, :longest])


def _batch(vocab_size: int, pad_id: int, num_chars: int, generator: torch.Generator) -> Batch:
    """Random ids of ``LENGTHS``; with ``num_chars``, each real word 1..WORD_LENGTH random
    characters (1 .. num_chars - 1), 0 after them and at padded words."""
    lengths = torch.tensor(LENGTHS)
    mask = mask_of(lengths, int(lengths.max()))
    real = [i for i in range(vocab_size) if i != pad_id]
    picks = torch.randint(len(real), mask.shape, generator=generator)
    ids = torch.tensor(real)[picks].masked_fill(~mask, pad_id)
    if not num_chars:
        return Batch(ids, lengths, None)
    word_lengths = torch.randint(1, WORD_LENGTH + 1, mask.shape, generator=generator)
    word_lengths = word_lengths.masked_fill(~mask, 0)
    word_lengths[0, 0] = WORD_LENGTH  # the batch's longest word pads every other one
    chars = torch.randint(1, num_chars, (*mask.shape, WORD_LENGTH), generator=generator)
    in_word = torch.arange(WORD_LENGTH) < word_lengths.unsqueeze(2)
    return Batch(ids, lengths, chars.masked_fill(~in_word, 0))


def _check_dims(module: Embedding, batch: Batch) -> str | None:
    out_dim = getattr(module, "output_dim", None)
    if not isinstance(out_dim, int) or out_dim < 1:
        return f"output_dim must be a positive int, got {out_dim!r}"
    with torch.no_grad():
        vectors = batch.embed(module)
    if not isinstance(vectors, Tensor):
        return f"forward returned {type(vectors).__name__}, expected a Tensor"
    expected = (*batch.ids.shape, out_dim)
    if tuple(vectors.shape) != expected:
        return f"the vectors have shape {tuple(vectors.shape)}, expected {expected}"
    if not vectors.is_floating_point():
        return f"the vectors are {vectors.dtype}, expected floating point"
    return None


def _check_padding(module: Embedding, batch: Batch, atol: float, rtol: float) -> str | None:
    with torch.no_grad():
        full = batch.embed(module)
        if batch.chars is not None:  # the finer check first: it names the characters
            problem = _words_alone(module, batch, full, atol, rtol)
            if problem:
                return problem
        for row, length in enumerate(batch.lengths.tolist()):
            alone = batch.embed(module, slice(row, row + 1), length)
            problem = close(alone, full[row : row + 1, :length], atol, rtol)
            if problem:
                return (
                    f"a length-{length} row's vectors differ alone and inside a batch padded "
                    f"with pad_id: {problem}. Padding must never change a real token's vector"
                )
    return None


def _words_alone(
    module: Embedding, batch: Batch, full: Tensor, atol: float, rtol: float
) -> str | None:
    """Each real word embedded alone (a [1, 1] batch, no character padding) equals its
    vector inside the batch, where its characters are padded to the longest word's."""
    for row, length in enumerate(batch.lengths.tolist()):
        for step in range(length):
            word = Batch(
                batch.ids[row : row + 1, step : step + 1],
                torch.ones(1, dtype=torch.long),
                batch.chars[row : row + 1, step : step + 1],
            )
            problem = close(word.embed(module), full[row : row + 1, step : step + 1], atol, rtol)
            if problem:
                return (
                    f"word {step} of row {row} embedded alone differs from the same word "
                    f"inside the batch, whose longer words pad its characters: {problem}. "
                    "A word's vector must depend on its real characters only (mask the "
                    "padded ones, char id 0)"
                )
    return None


def _check_gradients(module: Embedding, batch: Batch, generator: torch.Generator) -> str | None:
    module.train()
    if not any(p.requires_grad for p in module.parameters()):
        return None  # frozen by its config (or parameter-free): nothing to train
    random_loss([batch.embed(module)], generator).backward()
    return missing_gradients(module)


def _check_weight(module: Embedding, vocab_size: int, characters: bool) -> str | None:
    weight = module.weight
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        return f"weight must be None or a Tensor, got {type(weight).__name__}"
    expected = (vocab_size, module.output_dim)
    if characters and weight.dim() == 2 and 0 < weight.size(1) <= module.output_dim:
        expected = (vocab_size, weight.size(1))  # the word part of word + char vectors
    if tuple(weight.shape) != expected:
        return (
            f"weight has shape {tuple(weight.shape)}, expected {expected} "
            "([vocab_size, output_dim], the table a language model's head ties to), or None"
        )
    return None


def _check_characters(module: Embedding, batch: Batch, num_chars: int) -> str | None:
    """The same ids with other characters must give other vectors: reading them is the
    point of a character-aware embedding (an unknown word is told apart by its spelling)."""
    assert batch.chars is not None
    respelled = torch.where(batch.chars > 0, batch.chars % (num_chars - 1) + 1, batch.chars)
    with torch.no_grad():
        before = batch.embed(module)
        after = Batch(batch.ids, batch.lengths, respelled).embed(module)
    if torch.equal(before, after):
        return (
            "the same word ids with other characters give the same vectors: the embedding "
            "ignores chars (it sets uses_characters = True, so it must read them)"
        )
    return None
