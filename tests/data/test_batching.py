"""Batching: every row exactly once per epoch, little padding, exact padded matrices."""

import numpy as np
import torch

from pipeline.data.batching import EncodedSplit, batch_order, iterate_batches


def test_padded_matrix_from_flat_ids():
    values = np.array([5, 6, 7, 8, 9, 10])
    offsets = np.array([0, 3, 3, 6])  # rows: [5, 6, 7], [], [8, 9, 10]
    split = EncodedSplit.from_flat(values, offsets, pad_id=0, labels=torch.tensor([1, 0, 1]))
    assert split.ids.tolist() == [[5, 6, 7], [0, 0, 0], [8, 9, 10]]
    assert split.lengths.tolist() == [3, 0, 3]


def test_training_order_covers_every_row_once_and_buckets_by_length():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 400, (1000,))
    order = batch_order(lengths, 32, shuffle=True, bucket_size=10, generator=g)
    rows = torch.cat(order)
    assert sorted(rows.tolist()) == list(range(1000))
    padded = sum(len(b) * int(lengths[b].max()) for b in order)
    unbucketed = batch_order(lengths, 32, shuffle=True, bucket_size=1, generator=g)
    padded_plain = sum(len(b) * int(lengths[b].max()) for b in unbucketed)
    assert padded < 0.7 * padded_plain


def test_order_differs_between_epochs_but_is_seeded():
    lengths = torch.randint(1, 50, (200,))
    a = batch_order(
        lengths, 16, shuffle=True, bucket_size=4, generator=torch.Generator().manual_seed(1)
    )
    b = batch_order(
        lengths, 16, shuffle=True, bucket_size=4, generator=torch.Generator().manual_seed(1)
    )
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=False))
    g = torch.Generator().manual_seed(1)
    first = batch_order(lengths, 16, shuffle=True, bucket_size=4, generator=g)
    second = batch_order(lengths, 16, shuffle=True, bucket_size=4, generator=g)
    assert not all(torch.equal(x, y) for x, y in zip(first, second, strict=False))


def test_batches_are_trimmed_to_their_longest_row_with_masks():
    values = np.arange(1, 11)
    offsets = np.array([0, 1, 3, 10])
    split = EncodedSplit.from_flat(values, offsets, pad_id=0)
    order = [torch.tensor([0, 1])]
    (batch,) = iterate_batches(split, order, torch.device("cpu"))
    assert batch.ids.tolist() == [[1, 0], [2, 3]]
    assert batch.mask.tolist() == [[True, False], [True, True]]
