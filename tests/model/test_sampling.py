"""Sampling text from a language model: one host sync per sample, not one per token."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.model.sampling import decode, sample

SYNCS = {"aten::_local_scalar_dense", "aten::item", "aten::nonzero"}


class Tokens:
    """A tokenizer of space-separated numbers; id 0 is padding."""

    pad_id, separator = 0, " "

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [[int(w) for w in text.split()] for text in texts]

    def decode(self, ids: list[int]) -> str:
        return " ".join(map(str, ids))


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 12) -> None:
        super().__init__()
        self.embed, self.rnn = nn.Embedding(vocab, 8), nn.GRU(8, 8, batch_first=True)
        self.out = nn.Linear(8, vocab)

    def forward(self, ids, mask, state=None):
        hidden, state = self.rnn(self.embed(ids), state)
        return self.out(hidden), state


class HostSyncs(TorchDispatchMode):
    """Counts the operators that make the host wait for the device."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func.name() in SYNCS
        return func(*args, **(kwargs or {}))


def per_token_reference(model, prompt_ids, max_tokens, temperature, top_k, seed):
    """The sampler as it was: each token read back to the host as soon as it is drawn."""
    generator = torch.Generator().manual_seed(seed)
    logits, state = model(torch.tensor([prompt_ids]), None)
    out = []
    for _ in range(max_tokens):
        scores = logits[0, -1].float() / temperature
        scores[0] = float("-inf")
        if top_k:
            kth = torch.topk(scores, top_k).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        token = torch.multinomial(torch.softmax(scores, dim=0), 1, generator=generator)
        out.append(int(token))
        logits, state = model(token.view(1, 1), None, state)
    return out


@torch.inference_mode()
def test_sampling_syncs_the_host_once_not_once_per_token():
    torch.manual_seed(0)
    model = TinyLM().eval()
    with HostSyncs() as syncs:
        text = sample(model, Tokens(), "3 4 5", max_tokens=40, temperature=0.9, top_k=5, seed=2)
    assert syncs.count <= 2, f"{syncs.count} host syncs for 40 tokens"
    expected = per_token_reference(model, [3, 4, 5], 40, 0.9, 5, 2)
    assert text == "3 4 5 " + decode(Tokens(), expected)  # the same draws as before
