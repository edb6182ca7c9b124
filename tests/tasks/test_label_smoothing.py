"""``task.label_smoothing``: 0 is the plain cross-entropy; e > 0 is (1 - e) x the label's
negative log-likelihood + e x the mean over classes of -log p (Szegedy et al. 2016)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.config.schemas import TaskConfig, TrainerConfig
from pipeline.tasks.classification import ClassificationTask
from pipeline.training.context import local_context
from tests.training.test_nonfinite import PoisonedAfter, split


def first_batch_loss(tmp_path, smoothing: float):
    trainer = TrainerConfig(batch_size=16, device="cpu", progress="none")
    task_cfg = TaskConfig(sample_tokens=0, label_smoothing=smoothing)
    ctx = local_context(trainer, checkpoint_dir=tmp_path, task=task_cfg)
    splits = {"train": split(40, 0), "validation": split(10, 1)}
    task = ClassificationTask.from_splits(ctx, splits, ["a", "b"])
    torch.manual_seed(0)
    model = PoisonedAfter(n=10**9).eval()
    batch = next(task.train_batches(1, 0).batches)
    summed, rows, _ = task.loss(model, batch, None)
    shard = batch[0]
    return summed, rows, model(shard.ids, shard.mask).float(), shard.labels


def test_no_smoothing_is_the_plain_cross_entropy(tmp_path):
    summed, _, logits, labels = first_batch_loss(tmp_path, 0.0)
    assert torch.equal(summed, F.cross_entropy(logits, labels, reduction="sum"))


@pytest.mark.parametrize("e", [0.1, 0.3])
def test_smoothing_follows_the_formula(tmp_path, e):
    summed, rows, logits, labels = first_batch_loss(tmp_path, e)
    log_p = F.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, labels[:, None]).squeeze(1)
    expected = ((1 - e) * nll + e * (-log_p).mean(dim=1)).sum()
    torch.testing.assert_close(summed, expected)
    plain, *_ = first_batch_loss(tmp_path, 0.0)
    assert not torch.isclose(summed, plain) and rows == len(labels)
