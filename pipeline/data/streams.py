"""Token streams for language models: parallel streams and truncated back-propagation.

A split's N token ids form one stream. It is cut into ``batch_size`` parallel streams of
L = ceil((N - 1) / batch_size) steps; stream b reads ids[b*L : (b+1)*L] and predicts
ids[b*L + 1 : (b+1)*L + 1]. The token at a boundary, ids[(b+1)*L], is the last target of
stream b and the first input of stream b + 1, so every token but the very first is a target
exactly once: perplexity is computed over exactly N - 1 tokens, with nothing dropped (the
classic ``batchify`` drops N mod batch_size tokens) and nothing counted twice. The last
stream is padded on the right; its padding is masked out of the loss.

Batches are then consecutive windows of ``bptt`` columns: [B, bptt] inputs, targets and
mask. The recurrent state of window k is the initial state of window k + 1 (detached), so
stream b is read in order, start to end, across the epoch.

With ``trainer.bptt_jitter`` (AWD-LSTM's variable BPTT) the windows' lengths vary: see
:func:`jittered_bounds`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class Streams:
    """``batch_size`` parallel streams: inputs, targets [B, L] and mask [B, L] (True = a real
    target), padded on the right with ``pad_id``."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor

    @property
    def num_targets(self) -> int:
        return int(self.mask.sum())

    @property
    def nbytes(self) -> int:
        parts = (self.inputs, self.targets, self.mask)
        return sum(p.numel() * p.element_size() for p in parts)

    def to(self, device: torch.device) -> Streams:
        """The streams resident on ``device`` (``trainer.data_on_device``): their windows are
        then slices there, with no per-step copy."""
        return Streams(self.inputs.to(device), self.targets.to(device), self.mask.to(device))


@dataclass
class Window:
    """One truncated-BPTT step: [B, T] ids, targets and mask."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    lr_scale: float = 1.0  # T / bptt under trainer.bptt_jitter: shorter windows step less


def flat_ids(dataset: Any) -> Tensor:
    """All ``input_ids`` of a tokenized split, in row order, as one int64 stream [N]."""
    column = dataset.with_format("arrow")[:].column("input_ids").combine_chunks()
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)
    # A sliced Arrow list array may start at a non-zero offset: take exactly its rows.
    return torch.from_numpy(values[offsets[0] : offsets[-1]].astype(np.int64))


def make_streams(ids: Tensor, batch_size: int, pad_id: int) -> Streams:
    """Cut a stream of N ids into ``batch_size`` parallel streams (see the module docstring).

    With fewer than ``batch_size`` targets, fewer streams are made (never an empty one).
    The streams are made on the device ``ids`` is on.
    """
    n = ids.numel() - 1  # targets
    if n < 1:
        raise ValueError(f"a language-model stream needs at least 2 tokens, got {ids.numel()}")
    rows = min(batch_size, n)
    length = math.ceil(n / rows)
    rows = math.ceil(n / length)  # no all-padding stream
    starts = torch.arange(rows, device=ids.device).unsqueeze(1) * length  # [B, 1]
    steps = torch.arange(length, device=ids.device).unsqueeze(0)
    position = starts + steps  # [B, L]: index of each input
    mask = position < n  # input i predicts ids[i + 1]; the last real input is ids[n - 1]
    inputs = torch.where(mask, ids[position.clamp(max=n - 1)], pad_id)
    targets = torch.where(mask, ids[(position + 1).clamp(max=n)], pad_id)
    return Streams(inputs, targets, mask)


def windows(
    streams: Streams, bptt: int, device: torch.device, bounds: Sequence[int] | None = None
) -> Iterator[Window]:
    """Consecutive [B, bptt] windows (the last may be shorter), moved to ``device`` (slices
    of the streams, no copy, when they live there already). ``bounds``: the columns where
    windows start, then the end (:func:`jittered_bounds`); each window's ``lr_scale`` is
    then its length / ``bptt``."""
    pin = device.type == "cuda" and streams.inputs.device.type == "cpu"
    if bounds is None:
        starts = range(0, streams.inputs.size(1), bptt)
        spans = [(start, start + bptt, 1.0) for start in starts]
    else:
        spans = [(a, b, (b - a) / bptt) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    for start, end, lr_scale in spans:
        parts = (
            streams.inputs[:, start:end],
            streams.targets[:, start:end],
            streams.mask[:, start:end],
        )
        if pin:
            parts = tuple(p.pin_memory() for p in parts)
        yield Window(*(p.to(device, non_blocking=True) for p in parts), lr_scale=lr_scale)


def jittered_bounds(columns: int, bptt: int, jitter: float, seed: int, epoch: int) -> list[int]:
    """Window bounds [0, ..., columns] with AWD-LSTM's variable lengths: each window's mean
    is ``bptt`` with probability 0.95, else ``bptt / 2``; its length is drawn from
    N(mean, ``jitter``), at least min(5, bptt), cut at the streams' end. The generator is
    seeded with (``seed``, ``epoch``): the same windows on every process, every run and on
    resume, new ones each epoch."""
    rng = np.random.default_rng([seed, epoch])
    bounds, floor = [0], min(5, bptt)
    while bounds[-1] < columns:
        mean = bptt if rng.random() < 0.95 else bptt / 2
        length = max(floor, int(rng.normal(mean, jitter)))
        bounds.append(min(bounds[-1] + length, columns))
    return bounds


def num_windows(streams: Streams, bptt: int) -> int:
    return math.ceil(streams.inputs.size(1) / bptt)
