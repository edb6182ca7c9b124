"""``run(cfg)`` in this process, for every task, on toy data: seconds each, no subprocess
(the CLI has its own tests). Composed by Hydra's compose API exactly as the command line is."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from pipeline.errors import ConfigError
from pipeline.run.runner import run
from pipeline.tasks import kinds
from pipeline.tasks.classification import ClassificationTask

FAST = [
    "trainer.progress=none",
    "tracking=none",
    "encoder.hidden_size=16",
    "embedding.dim=16",
]


def composed(*overrides: str):
    with initialize_config_module(config_module="conf", version_base=None):
        return compose(config_name="config", overrides=[*FAST, *overrides])


def toy_reviews(path: Path, rows: int = 400) -> Path:
    """Texts whose label is which of two word sets they draw from: learnable in an epoch."""
    rng = random.Random(0)
    good, bad = ["great", "fine", "superb", "lovely"], ["awful", "dull", "poor", "bad"]
    filler = ["the", "film", "was", "and", "plot", "actors", "a", "it"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = "pos" if i % 2 else "neg"
            words = rng.choices(filler, k=6) + rng.choices(good if i % 2 else bad, k=2)
            rng.shuffle(words)
            writer.writerow([" ".join(words), label])
    return path


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # outputs/manual/ goes here
    return tmp_path


def test_classification_runs_in_process(in_tmp):
    train = toy_reviews(in_tmp / "train.csv")
    cfg = composed("data=files", f"data.train={train}", "trainer.max_epochs=4", "optimizer.lr=0.01")
    result = run(cfg)
    assert result.metrics["test/accuracy"] > 0.9
    assert set(result.metrics) == {
        f"{s}/{m}" for s in ("val", "test") for m in ("loss", "accuracy", "f1")
    }
    saved = torch.load(result.best_checkpoint, weights_only=True)
    assert saved["labels"] == ["neg", "pos"] and saved["config"]["task"]["type"] == "classification"
    assert (result.output_dir / "reports" / "classification_report.json").is_file()


def test_language_model_runs_in_process(in_tmp, data_dir, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(data_dir))
    cfg = composed(
        "task=lm",
        "data.max_train_chars=20000",
        "trainer.max_epochs=2",
        "trainer.bptt=20",
        "task.sample_tokens=10",
    )
    result = run(cfg)
    assert result.metrics["val/perplexity"] < 25  # a uniform guess over 28 characters: 28
    history = torch.load(result.best_checkpoint, weights_only=True)["history"]
    assert [h["epoch"] for h in history] == [1, 2] and "train/bpc" in history[0]
    assert (result.output_dir / "samples" / "epoch_002.txt").is_file()


def test_an_unknown_task_kind_is_named_with_the_known_ones(in_tmp):
    cfg = composed("task.type=clasification")
    with pytest.raises(ConfigError, match="Unknown task kind 'clasification'.*classification"):
        run(cfg)


def test_a_task_kind_from_a_plugin_is_found_by_its_name(in_tmp):
    """A third party declares a kind as it declares any component; task.type selects it."""

    class Counting(ClassificationTask):
        built = 0

        def __init__(self, cfg):
            super().__init__(cfg)
            Counting.built += 1

    from pipeline.config.schemas import TaskConfig

    kinds.register("counting_classification", TaskConfig)(Counting)
    train = toy_reviews(in_tmp / "train.csv", rows=100)
    cfg = composed(
        "task.type=counting_classification",
        "data=files",
        f"data.train={train}",
        "trainer.max_epochs=1",
    )
    result = run(cfg)
    assert Counting.built == 1 and "test/accuracy" in result.metrics
