"""Sampling text from a language model: the prompt warms the recurrent state up in one
pass; then each sampled token is fed back with the state, on the device (the tokens are
copied to the host once, at the end). Sampling: logits / temperature,
optionally only the top_k most likely tokens, drawn with a seeded generator, so the same
seed gives the same text."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.errors import ConfigError


def _strip_eos(ids: list[int], eos: int | None) -> list[int]:
    return ids[:-1] if eos is not None and ids and ids[-1] == eos else ids


def decode(tokenizer: Any, ids: list[int]) -> str:
    """Text for ids; an end-of-sentence token becomes a line break."""
    eos = getattr(tokenizer, "eos_id", None)
    if eos is None:
        return tokenizer.decode(ids)
    lines, current = [], []
    for i in ids:
        if i == eos:
            lines.append(tokenizer.decode(current))
            current = []
        else:
            current.append(i)
    return "\n".join([*lines, tokenizer.decode(current)])


@torch.inference_mode()
def sample(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    *,
    max_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> str:
    """The prompt followed by ``max_tokens`` sampled tokens."""
    device = torch.device(device)
    ids = _strip_eos(tokenizer.encode_batch([prompt])[0], getattr(tokenizer, "eos_id", None))
    if not ids:
        raise ConfigError('generate needs a non-empty prompt (prompt="...").')
    was_training = model.training
    model.eval().to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    inputs = torch.tensor([ids], device=device)
    logits, state = model(inputs, torch.ones_like(inputs, dtype=torch.bool))
    drawn: list[torch.Tensor] = []  # kept on the device: no host sync per token
    one = torch.ones(1, 1, dtype=torch.bool, device=device)
    for _ in range(max_tokens):
        scores = logits[0, -1].float() / temperature
        scores[tokenizer.pad_id] = float("-inf")  # never emit padding
        if top_k:
            kth = torch.topk(scores, min(top_k, scores.numel())).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        token = torch.multinomial(torch.softmax(scores, dim=0), 1, generator=generator)
        drawn.append(token)
        logits, state = model(token.view(1, 1), one, state)
    out: list[int] = torch.cat(drawn).tolist() if drawn else []  # one copy to the host
    model.train(was_training)
    separator = getattr(tokenizer, "separator", " ")
    continuation = decode(tokenizer, out)
    glue = "" if continuation.startswith("\n") else separator
    return decode(tokenizer, ids) + glue + continuation
