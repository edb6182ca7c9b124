"""The plain cuDNN loops ``bench/gpu_check.py`` compares the pipeline with: the model
written by hand (``nn.Embedding`` -> ``nn.LSTM`` -> ``nn.Linear``), its data on the device,
the pipeline's own optimizer and clipping for the same config (``common.pipeline_optimizer``),
fp32 (cuDNN's TF32 as torch defaults it), no host sync inside the timed steps.
"""

from __future__ import annotations

import time
from typing import Any

import common
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


def timed(device: torch.device, steps: int, step: Any, warmup: int = 5) -> float:
    """Seconds per call of ``step(i)`` after ``warmup`` calls, synchronised at both ends."""
    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def _trainer(model: nn.Module, cfg: Any, device: torch.device) -> Any:
    """A ``train(loss)`` that steps ``model`` as the pipeline would under ``cfg``."""
    optimizer, clip = common.pipeline_optimizer(model, cfg, device)

    def train(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return train


class BiLSTMClassifier(nn.Module):
    """Embedding -> packed (exact under padding) stacked BiLSTM -> Linear on both final states."""

    def __init__(self, vocab: int, dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 2)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(ids), lengths, True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.out(torch.cat([h[-2], h[-1]], dim=1))


def seed_samples_per_s(data: Any, cfg: Any, device: torch.device, epochs: int) -> float:
    """The seed model (Embedding 10k x 128 -> LSTM 32, rows left-padded to 80), best epoch."""
    train = data.splits["train"]
    ids = common.left_padded(train, int(cfg.data.max_length), data.tokenizer.pad_id).to(device)
    labels = train.labels.to(device)
    torch.manual_seed(0)
    model = common.seed_model(data.tokenizer.vocab_size, data.num_classes).to(device)
    optimizer, clip = common.pipeline_optimizer(model, cfg, device)
    batch = int(cfg.trainer.batch_size)
    common.hand_written_epoch(model, optimizer, ids[:640], labels[:640], batch, 0, None, None, clip)
    return max(
        common.hand_written_epoch(model, optimizer, ids, labels, batch, e + 1, None, None, clip)
        for e in range(epochs)
    )


def bilstm_samples_per_s(data: Any, cfg: Any, device: torch.device, steps: int) -> float:
    """A stacked BiLSTM on IMDb rows cut to ``data.max_length``, packed, random batches."""
    train, batch = data.splits["train"], int(cfg.trainer.batch_size)
    width = int(cfg.data.max_length)
    ids = train.ids[:, :width].to(device)
    lengths = train.lengths.clamp(1, width)  # on the CPU, as packing wants them
    labels = train.labels.to(device)
    torch.manual_seed(0)
    model = BiLSTMClassifier(
        data.tokenizer.vocab_size,
        int(cfg.embedding.dim),
        int(cfg.encoder.hidden_size),
        int(cfg.encoder.num_layers),
    ).to(device)
    train_step = _trainer(model, cfg, device)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))

    def step(i: int) -> None:
        rows = order[(i * batch) % (len(train) - batch) :][:batch]
        train_step(F.cross_entropy(model(ids[rows.to(device)], lengths[rows]), labels[rows]))

    return batch / timed(device, steps, step)


class ZarembaLM(nn.Module):
    """Embedding -> dropout -> stacked LSTM (dropout between layers) -> dropout -> Linear."""

    def __init__(self, vocab: int, size: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding, self.drop = nn.Embedding(vocab, size), nn.Dropout(dropout)
        self.lstm = nn.LSTM(size, size, layers, dropout=dropout, batch_first=True)
        self.out = nn.Linear(size, vocab)

    def forward(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        hidden, state = self.lstm(self.drop(self.embedding(ids)), state)
        return self.out(self.drop(hidden)), state


def lm_tokens_per_s(cfg: Any, vocab: int, device: torch.device, steps: int) -> float:
    """Truncated BPTT over a random token stream, the carried state detached per window."""
    batch, bptt = int(cfg.trainer.batch_size), int(cfg.trainer.bptt)
    torch.manual_seed(0)
    model = ZarembaLM(
        vocab, int(cfg.encoder.hidden_size), int(cfg.encoder.num_layers), float(cfg.encoder.dropout)
    ).to(device)
    train_step = _trainer(model, cfg, device)
    stream = torch.randint(1, vocab, (batch, bptt * 64 + 1), device=device)
    state: list[Any] = [None]

    def step(i: int) -> None:
        at = (i % 64) * bptt
        x, y = stream[:, at : at + bptt], stream[:, at + 1 : at + bptt + 1]
        logits, carried = model(x, state[0])
        state[0] = tuple(s.detach() for s in carried)
        train_step(F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1)))

    return batch * bptt / timed(device, steps, step)
