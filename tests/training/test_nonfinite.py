"""A NaN or infinite loss stops training with the step and likely causes, keeps the last good
checkpoint and marks the MLflow run FAILED."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.config.schemas import OptimizerConfig, TrainerConfig
from pipeline.data.batching import EncodedSplit
from pipeline.errors import PipelineError
from pipeline.model.checkpoint import load_checkpoint
from pipeline.tasks.classification import ClassificationTask
from pipeline.training.context import local_context
from pipeline.training.loop import fit
from tests.cli import run_pipeline


class PoisonedAfter(nn.Module):
    """A bag-of-embeddings classifier whose logits become NaN from training call ``n`` on."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(50, 8, padding_idx=0)
        self.out = nn.Linear(8, 2)
        self.calls, self.n = 0, n

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = (self.embedding(ids) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        logits = self.out(pooled)
        if self.training:
            self.calls += 1
            if self.calls >= self.n:
                logits = logits * float("nan")
        return logits


def split(rows: int, seed: int) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(1, 50, int(offsets[-1]))
    labels = torch.from_numpy(rng.integers(0, 2, rows))
    return EncodedSplit.from_flat(values, offsets, 0, labels)


def train_toy(model, train, validation, trainer, checkpoint_dir, optimizer=None):
    """``fit`` in this process on two encoded splits (validation doubles as test)."""
    optimizer = optimizer or OptimizerConfig()
    ctx = local_context(trainer, optimizer, checkpoint_dir=checkpoint_dir)
    splits = {"train": train, "validation": validation, "test": validation}
    return fit(ClassificationTask.from_splits(ctx, splits, ["a", "b"]), model, ctx)


def test_nan_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    train, validation = split(40, 0), split(10, 1)  # 40 rows / batch 10 = 4 steps an epoch
    model = PoisonedAfter(n=4 + 3)  # the 3rd step of epoch 2
    trainer = TrainerConfig(max_epochs=3, batch_size=10, log_every_n_steps=1, progress="none")
    with pytest.raises(PipelineError) as caught:
        train_toy(model, train, validation, trainer, tmp_path)
    message = str(caught.value)
    assert "became NaN or infinite at step 3 of epoch 2" in message
    assert "optimizer.lr" in message and "trainer.grad_clip" in message
    assert f"{tmp_path / 'last.pt'}, is kept" in message
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["epoch"] == 1  # from before the NaN
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def test_diverging_run_fails_clearly_and_is_marked_failed(tmp_path, data_dir, hf_cache):
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_DATASETS_CACHE": str(hf_cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = run_pipeline(
        "data=sst2",
        "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
        "data.max_train_samples=400",
        "data.max_eval_samples=50",
        "encoder.hidden_size=8",
        "embedding.dim=8",
        "optimizer=sgd",
        "optimizer.lr=1e38",
        "trainer.grad_clip=0",
        "trainer.log_every_n_steps=2",
        "trainer.progress=none",
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "became NaN or infinite " in done.stderr and " of epoch 1;" in done.stderr
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("sentiment").experiment_id])
    assert run.info.status == "FAILED"
    assert "NaN or infinite" in run.data.tags["error"]


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    """trainer.compile=true trains the same model to the same metrics (within float noise)."""
    results = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = PoisonedAfter(n=10**9)  # never poisoned
        trainer = TrainerConfig(
            max_epochs=2, batch_size=10, progress="none", compile=compiled, patience=0
        )
        fitted = train_toy(model, split(40, 0), split(10, 1), trainer, tmp_path / str(compiled))
        results[compiled] = [h["val/loss"] for h in fitted.history]
    assert results[True] == pytest.approx(results[False], abs=1e-5)
