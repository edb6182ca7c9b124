"""Tensors and batches: padded id matrices, length-bucketed batch order, masks.

Tokenized splits are turned once into one padded id matrix [N, L] plus lengths, so a
batch is a single index operation (no per-row Python work, no DataLoader workers: on
this kind of CPU two workers were slower than none).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class EncodedSplit:
    """One split as tensors: ids [N, L] (right-padded with pad_id), lengths [N], labels [N]."""

    ids: Tensor
    lengths: Tensor
    labels: Tensor | None

    def __len__(self) -> int:
        return self.ids.size(0)

    @classmethod
    def from_dataset(cls, dataset, pad_id: int) -> EncodedSplit:
        """Build from a tokenized ``datasets.Dataset`` with ``input_ids`` (and ``label``)."""
        table = dataset.with_format("arrow")[:]
        column = table.column("input_ids").combine_chunks()
        offsets = column.offsets.to_numpy().astype(np.int64)
        values = column.values.to_numpy(zero_copy_only=False).astype(np.int64)
        labels = None
        if "label" in table.column_names:
            labels = torch.from_numpy(table.column("label").to_numpy().astype(np.int64))
        return cls.from_flat(values, offsets, pad_id, labels)

    @classmethod
    def from_flat(
        cls, values: np.ndarray, offsets: np.ndarray, pad_id: int, labels: Tensor | None = None
    ) -> EncodedSplit:
        """Pad rows given as one flat id array and row offsets (len N + 1)."""
        lengths = np.diff(offsets)
        n, width = len(lengths), int(lengths.max(initial=0))
        ids = np.full((n, max(width, 1)), pad_id, dtype=np.int64)
        rows = np.repeat(np.arange(n), lengths)
        cols = np.arange(len(values)) - np.repeat(offsets[:-1], lengths)
        ids[rows, cols] = values
        return cls(torch.from_numpy(ids), torch.from_numpy(lengths), labels)


@dataclass
class Batch:
    ids: Tensor  # [B, T]
    mask: Tensor  # [B, T] True = real token
    labels: Tensor | None  # [B]

    def __len__(self) -> int:
        return self.ids.size(0)


def batch_order(
    lengths: Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    bucket_size: int,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Row indices of each batch.

    Training (shuffle): rows are shuffled, cut into pools of ``batch_size * bucket_size``,
    sorted by length inside each pool and cut into batches, whose order is shuffled; so
    batches hold rows of similar length (little padding) yet differ every epoch.
    Evaluation: rows sorted by length, in order.
    """
    n = lengths.numel()
    if n == 0:  # an empty split has no batches (not one empty batch)
        return []
    if not shuffle:
        order = torch.argsort(lengths, stable=True)
        return list(order.split(batch_size))
    order = torch.randperm(n, generator=generator)
    pool = batch_size * bucket_size
    batches: list[Tensor] = []
    for start in range(0, n, pool):
        chunk = order[start : start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(chunk.split(batch_size))
    if bucket_size > 1:
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
    return batches


def iterate_batches(
    split: EncodedSplit, order: list[Tensor], device: torch.device
) -> Iterator[Batch]:
    """Yield batches trimmed to their longest row, moved to ``device``."""
    pin = device.type == "cuda"
    for index in order:
        lengths = split.lengths[index]
        width = max(int(lengths.max()), 1)
        ids = split.ids[index, :width]
        labels = split.labels[index] if split.labels is not None else None
        mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
        if pin:
            ids, mask = ids.pin_memory(), mask.pin_memory()
            labels = labels.pin_memory() if labels is not None else None
        yield Batch(
            ids.to(device, non_blocking=True),
            mask.to(device, non_blocking=True),
            labels.to(device, non_blocking=True) if labels is not None else None,
        )
