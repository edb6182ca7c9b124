"""Resume in-process, on toy data: the best model survives a kill between the checkpoint
writes, only the newest checkpoint of a run goes on, a FINISHED MLflow run is not reopened,
and the temporary files of a killed write are removed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from pipeline.errors import PipelineError
from pipeline.model.checkpoint import Checkpoint
from pipeline.run.runner import run
from pipeline.tasks.classification import ClassificationTask
from tests.run.test_runner import FAST, composed, in_tmp, toy_reviews  # noqa: F401 (in_tmp: fixture)

#: The validation accuracy of each epoch: epoch 2 is the best, and epoch 3 is not.
VAL_ACCURACY = {1: 0.5, 2: 0.9, 3: 0.7}


class Killed(BaseException):
    """Stands for ``kill -9``: nothing after it runs (no handler catches a BaseException)."""


@pytest.fixture()
def scripted(monkeypatch) -> None:
    """Validation accuracy follows VAL_ACCURACY (which epoch is best is then known); the
    weights, losses and test metrics stay the real ones."""
    real_batches, real_evaluate = ClassificationTask.train_batches, ClassificationTask.evaluate

    def train_batches(self, epoch, start):
        self.scripted_epoch = epoch
        return real_batches(self, epoch, start)

    def evaluate(self, model, split):
        metrics = real_evaluate(self, model, split)
        if split == "validation":
            metrics["accuracy"] = VAL_ACCURACY[self.scripted_epoch]
        return metrics

    monkeypatch.setattr(ClassificationTask, "train_batches", train_batches)
    monkeypatch.setattr(ClassificationTask, "evaluate", evaluate)


def toy_run(folder: Path, *overrides: str, tracking: str = "none"):
    """The toy classifier's config, for 3 epochs, its data in ``folder``."""
    train = folder / "train.csv"
    if not train.exists():
        toy_reviews(train, rows=200)
    args = ["data=files", f"data.train={train}", "trainer.max_epochs=3", "optimizer.lr=0.01"]
    if tracking == "none":
        return composed(*args, *overrides)
    with initialize_config_module(config_module="conf", version_base=None):
        fast = [o for o in FAST if not o.startswith("tracking=")]
        return compose("config", [*fast, f"tracking={tracking}", *args, *overrides])


def kill_between_the_two_writes(monkeypatch, epoch: int) -> None:
    """The process dies right after the first of the two checkpoint writes of ``epoch``."""
    real = Checkpoint.save

    def save(self, path):
        written = real(self, path)
        if self.epoch == epoch and self.resume and self.resume["step"] == 0:
            monkeypatch.setattr(Checkpoint, "save", real)
            raise Killed
        return written

    monkeypatch.setattr(Checkpoint, "save", save)


def test_a_kill_between_the_checkpoint_writes_keeps_the_best_model(
    in_tmp,  # noqa: F811
    scripted,
    monkeypatch,
):
    straight = in_tmp / "straight"
    straight.mkdir()
    monkeypatch.chdir(straight)
    expected = run(toy_run(in_tmp))
    assert Checkpoint.load(expected.best_checkpoint).epoch == 2  # as VAL_ACCURACY says

    monkeypatch.chdir(in_tmp)
    kill_between_the_two_writes(monkeypatch, epoch=2)  # epoch 2: the best one
    with pytest.raises(Killed):
        run(toy_run(in_tmp))
    resumed = run(toy_run(in_tmp, "trainer.resume=auto"))

    assert resumed.best_checkpoint is not None and resumed.best_checkpoint.is_file()
    best_epoch = Checkpoint.load(resumed.best_checkpoint).epoch
    assert best_epoch == 2  # the other write order left epoch 1's best.pt (or none)
    assert resumed.metrics == expected.metrics  # test metrics of the best epoch's weights


def test_resuming_from_a_best_pt_behind_its_last_pt_is_refused(in_tmp, scripted):  # noqa: F811
    done = run(toy_run(in_tmp))  # best.pt: epoch 2; last.pt: epoch 3
    best, last = done.best_checkpoint, done.output_dir / "last.pt"
    before = last.read_bytes()

    with pytest.raises(PipelineError, match="rewind") as refused:
        run(toy_run(in_tmp, f"trainer.resume={best}"))
    assert f"trainer.resume={last}" in str(refused.value) and "evaluate" in str(refused.value)
    assert last.read_bytes() == before


def test_a_finished_mlflow_run_is_not_reopened(in_tmp, scripted, mlflow_store):  # noqa: F811
    from mlflow import MlflowClient

    tracked = [f"tracking.uri={mlflow_store}", "tracking.log_model=false"]
    tracked.append("tracking.experiment=reopen")
    done = run(toy_run(in_tmp, *tracked, tracking="mlflow"))
    copy = in_tmp / "elsewhere" / "best.pt"
    copy.parent.mkdir()
    shutil.copy(done.best_checkpoint, copy)
    shutil.rmtree(done.output_dir)  # the run's own folder is gone; its MLflow run is not
    client = MlflowClient(mlflow_store)
    points = len(client.get_metric_history(done.run_id, "val/accuracy"))

    with pytest.raises(PipelineError, match="FINISHED"):
        run(toy_run(in_tmp, *tracked, f"trainer.resume={copy}", tracking="mlflow"))
    run_info = client.get_run(done.run_id).info
    assert run_info.status == "FINISHED"
    assert len(client.get_metric_history(done.run_id, "val/accuracy")) == points


def test_partial_writes_of_a_killed_run_are_removed(in_tmp):  # noqa: F811
    folder = in_tmp / "checkpoints"
    folder.mkdir()
    orphans = [folder / ".last.pt.k1ll3d.tmp", folder / ".best.pt.k1ll3d.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"PK half a checkpoint")
    other = folder / "notes.tmp"
    other.write_text("not ours")

    run(toy_run(in_tmp, "trainer.max_epochs=1", f"trainer.checkpoint_dir={folder}"))
    assert not any(orphan.exists() for orphan in orphans)
    assert other.exists() and (folder / "last.pt").is_file()
