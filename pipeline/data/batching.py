"""Tensors and batches: padded id matrices, length-bucketed batch order, masks.

Tokenized splits are turned once into one padded id matrix [N, L] plus lengths, so a
batch is a single index operation (no per-row Python work, no DataLoader workers: on
this kind of CPU two workers were slower than none).

A split may live on the GPU (``trainer.data_on_device``, see ``pipeline.data.placement``):
moved there once, its batches are indexed there, with only the widths computed on the host
(from the host copy of the lengths) and one copy of each epoch's row order: no per-step
indexing, pinning or copies on the host, and the very same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass
class OnDevice:
    """A split's tensors on its device (``EncodedSplit.to_device``)."""

    ids: Tensor
    lengths: Tensor
    labels: Tensor | None


@dataclass
class EncodedSplit:
    """One split as tensors: ids [N, L] (right-padded with pad_id), lengths [N], labels [N],
    on the host; ``on_device``: a copy on the device, that batches are indexed from."""

    ids: Tensor
    lengths: Tensor
    labels: Tensor | None
    on_device: OnDevice | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.ids.size(0)

    @property
    def nbytes(self) -> int:
        """What a copy of the split on a device takes."""
        tensors = (self.ids, self.lengths, self.labels)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def to_device(self, device: torch.device) -> EncodedSplit:
        """The split with a copy on ``device`` (the host tensors stay: orders, widths and
        reports read them there)."""
        labels = self.labels.to(device) if self.labels is not None else None
        copy = OnDevice(self.ids.to(device), self.lengths.to(device), labels)
        return EncodedSplit(self.ids, self.lengths, self.labels, copy)

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


class EpochOrders:
    """Each training epoch's batches (row indices, :func:`batch_order`), drawn by one
    generator seeded with the run's seed: the same on every process and every time an epoch
    is asked for. Asked for an earlier epoch, or first for a later one (a resumed run), the
    generator is replayed from the seed: that is what makes resume exact."""

    def __init__(self, lengths: Tensor, batch_size: int, bucket_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.bucket_size = lengths, batch_size, bucket_size
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._epoch = 0
        self._order: list[Tensor] = []

    def __call__(self, epoch: int) -> list[Tensor]:
        if self._generator is None or self._epoch > epoch:
            self._generator = torch.Generator().manual_seed(self.seed)
            self._epoch = 0
        while self._epoch < epoch:
            self._order = batch_order(
                self.lengths,
                self.batch_size,
                shuffle=True,
                bucket_size=self.bucket_size,
                generator=self._generator,
            )
            self._epoch += 1
        return self._order


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
    if split.on_device is not None:
        yield from _resident_batches(split.on_device, split.lengths, order)
        return
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


def _resident_batches(
    split: OnDevice, host_lengths: Tensor, order: list[Tensor]
) -> Iterator[Batch]:
    """The batches of a split copied to its device, indexed there (see the module
    docstring): the same tensors ``iterate_batches`` copies from the host."""
    if not order:
        return
    device = split.ids.device
    widths = [max(int(host_lengths[index].max()), 1) for index in order]
    rows = torch.cat(order)
    if device.type == "cuda":
        rows = rows.pin_memory()  # one asynchronous copy of the epoch's order
    rows = rows.to(device, non_blocking=True).split([len(index) for index in order])
    steps = torch.arange(split.ids.size(1), device=device).unsqueeze(0)
    for index, width in zip(rows, widths, strict=True):
        lengths = split.lengths[index]
        labels = split.labels[index] if split.labels is not None else None
        yield Batch(split.ids[index, :width], steps[:, :width] < lengths.unsqueeze(1), labels)
