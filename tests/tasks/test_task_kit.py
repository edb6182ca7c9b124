"""The task kit (pipeline.testing.check_task): both built-in tasks pass it, and it fails on
the mistakes a task author makes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.config.schemas import TrainerConfig
from pipeline.contracts import EpochBatches
from pipeline.data.batching import EncodedSplit, batch_order
from pipeline.tasks.classification import ClassificationTask
from pipeline.tasks.language_model import LanguageModelTask
from pipeline.testing import check_task
from pipeline.training.context import local_context


class BagOfWords(nn.Module):
    def __init__(self, vocab: int = 30, classes: int = 2) -> None:
        super().__init__()
        self.embedding, self.out = nn.Embedding(vocab, 8), nn.Linear(8, classes)

    def forward(self, ids, mask):
        return self.out((self.embedding(ids) * mask.unsqueeze(-1)).sum(1))


class NextToken(nn.Module):
    def __init__(self, vocab: int = 12) -> None:
        super().__init__()
        self.embedding, self.rnn = nn.Embedding(vocab, 8), nn.GRU(8, 8, batch_first=True)
        self.out = nn.Linear(8, vocab)

    def forward(self, ids, mask, state=None):
        out, state = self.rnn(self.embedding(ids), state)
        return self.out(out), state


def encoded(rows: int, seed: int) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(1, 30, int(offsets[-1]))
    return EncodedSplit.from_flat(values, offsets, 0, torch.from_numpy(rng.integers(0, 2, rows)))


def classification(tmp_path) -> ClassificationTask:
    ctx = local_context(TrainerConfig(batch_size=8, bucket_size=2), checkpoint_dir=tmp_path)
    splits = {"train": encoded(50, 0), "validation": encoded(20, 1)}
    return ClassificationTask.from_splits(ctx, splits, ["no", "yes"])


def language_model(tmp_path) -> LanguageModelTask:
    trainer = TrainerConfig(batch_size=3, bptt=5, monitor="val/perplexity", monitor_mode="min")
    ctx = local_context(trainer, checkpoint_dir=tmp_path)
    ids = torch.randint(1, 12, (100,), generator=torch.Generator().manual_seed(0))
    return LanguageModelTask.from_ids(ctx, {"train": ids, "validation": ids[:40]})


def test_the_built_in_tasks_pass_the_kit(tmp_path):
    check_task(classification(tmp_path), BagOfWords()).assert_ok()
    check_task(language_model(tmp_path), NextToken()).assert_ok()


class Reshuffling(ClassificationTask):
    """Draws a new order every time it is asked (torch's global generator): a resumed epoch
    would train other batches."""

    def _epoch_order(self, epoch: int):
        return batch_order(self.splits["train"].lengths, 8, shuffle=True, bucket_size=2)


class IgnoresStart(ClassificationTask):
    def train_batches(self, epoch: int, start: int) -> EpochBatches:
        return super().train_batches(epoch, 0)


class MeanLoss(ClassificationTask):
    def loss(self, model, batch, state):
        summed, count, state = super().loss(model, batch, state)
        return summed / count, 0, state  # a mean, and no item count


@pytest.mark.parametrize(
    ("kind", "check", "words"),
    [
        (Reshuffling, "batches", "other batches the second time"),
        (IgnoresStart, "resume", "is not the epoch's batches from"),
        (MeanLoss, "loss", "item count"),
    ],
)
def test_the_kit_names_what_a_task_gets_wrong(kind, check, words, tmp_path):
    task = classification(tmp_path)
    task.__class__ = kind
    report = check_task(task, BagOfWords())
    assert not report.ok and check in report.failed, str(report)
    assert words in report.failed[check]
