"""Settings chosen by the data: a small training set trains longer unless the user decided,
and a resumed run accepts what the data suggested to it."""

from __future__ import annotations

from omegaconf import OmegaConf

from pipeline.run.resume import config_differences
from pipeline.run.runner import run
from pipeline.tasks.classification import SMALL_TRAIN_ROWS, ClassificationTask
from tests.run.test_runner import composed, toy_reviews


def task_with_rows(rows: int) -> ClassificationTask:
    task = ClassificationTask.__new__(ClassificationTask)
    task.train_rows = rows
    return task


def test_small_training_sets_are_suggested_more_epochs_and_patience():
    small = {s.key: s.value for s in task_with_rows(8_528).suggested_settings()}
    assert small == {"trainer.max_epochs": 30, "trainer.patience": 4}
    assert task_with_rows(SMALL_TRAIN_ROWS).suggested_settings() == []


def test_a_run_applies_records_and_prints_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # outputs/manual/ goes here
    in_tmp = tmp_path
    train = toy_reviews(in_tmp / "train.csv", rows=200)
    # max_epochs set by the user (not the default): it stays; patience was left: it changes.
    cfg = composed("data=files", f"data.train={train}", "trainer.max_epochs=1")
    result = run(cfg)
    out = capsys.readouterr().out
    assert "settings suggested by the data (160 training texts" in out
    assert "trainer.patience=4" in out and "trainer.max_epochs=30" not in out
    saved = OmegaConf.load(result.output_dir / "config.yaml")
    assert saved.trainer.patience == 4 and saved.trainer.max_epochs == 1


def test_resume_accepts_what_the_data_suggested():
    current = {"trainer": {"patience": 2, "max_epochs": 6}, "encoder": {"name": "lstm"}}
    saved = {"trainer": {"patience": 4, "max_epochs": 6}, "encoder": {"name": "lstm"}}
    assert config_differences(saved, current, {"trainer.patience": 4}) == []
    # without the record, or when the user now gives another value, it is a difference
    assert config_differences(saved, current) == ["trainer.patience: 4 -> 2"]
    current["trainer"]["patience"] = 3
    assert config_differences(saved, current, {"trainer.patience": 4}) == [
        "trainer.patience: 4 -> 3"
    ]
