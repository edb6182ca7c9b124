"""``optimizer.average``: EMA and NT-ASGD weight averaging; the averaged weights are the ones
validated and saved, and a resumed run goes on with exactly the same average."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pipeline.config.schemas import OptimizerConfig, TrainerConfig
from pipeline.model.checkpoint import Checkpoint
from pipeline.tasks.classification import ClassificationTask
from pipeline.training.averaging import WeightAverage
from pipeline.training.context import local_context
from pipeline.training.loop import fit
from tests.training.test_nonfinite import PoisonedAfter, split


def sgd_steps(model: nn.Module, average: WeightAverage, steps: int) -> list[torch.Tensor]:
    """``steps`` SGD steps on a fixed loss; the weight after each."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.ones(1, 2)).pow(2).sum().backward()
        optimizer.step()
        average.step()
        seen.append(model.weight.detach().clone())
    return seen


def test_ema_is_the_exponential_moving_average_of_every_step():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    average = WeightAverage(model, OptimizerConfig(average="ema", ema_decay=0.9))
    weights = sgd_steps(model, average, 5)
    expected = weights[0]
    for w in weights[1:]:
        expected = 0.9 * expected + 0.1 * w
    torch.testing.assert_close(average.evaluated.weight, expected)
    assert average.evaluated is not model and not torch.equal(model.weight, expected)


def test_ntasgd_averages_from_its_trigger_on():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    average = WeightAverage(model, OptimizerConfig(average="ntasgd", ntasgd_patience=2))
    sgd_steps(model, average, 3)
    assert average.evaluated is model  # nothing averaged before the trigger
    assert not average.end_epoch(bad_epochs=1)
    assert average.end_epoch(bad_epochs=2)
    assert not average.end_epoch(bad_epochs=3)  # it starts once
    weights = sgd_steps(model, average, 4)
    torch.testing.assert_close(average.evaluated.weight, torch.stack(weights).mean(0))


def test_off_is_the_model_itself():
    model = nn.Linear(2, 1)
    average = WeightAverage(model, OptimizerConfig())
    assert average.evaluated is model and average.state_dict() is None
    assert not average.end_epoch(bad_epochs=100)


def run(tmp_path, average: str, epochs: int, resumed=None):
    trainer = TrainerConfig(
        max_epochs=epochs, batch_size=10, progress="none", device="cpu", patience=0
    )
    optimizer = OptimizerConfig(average=average, ema_decay=0.5, ntasgd_patience=1, lr=0.05)
    ctx = local_context(trainer, optimizer, checkpoint_dir=tmp_path)
    ctx.resumed = resumed
    splits = {"train": split(40, 0), "validation": split(30, 1)}
    task = ClassificationTask.from_splits(ctx, splits, ["a", "b"])
    torch.manual_seed(0)
    model = PoisonedAfter(n=10**9)
    return fit(task, model, ctx), task, model


def test_ema_weights_are_validated_and_saved(tmp_path):
    book, task, model = run(tmp_path, "ema", 2)
    last = Checkpoint.load(tmp_path / "last.pt")
    training = last.average["training"]
    assert last.average["n_averaged"] == 8  # 2 epochs of 4 steps
    assert any(not torch.equal(last.model[k], training[k]) for k in training)
    saved = copy.deepcopy(model)
    saved.load_state_dict(last.model)
    val = task.evaluate(saved, "validation")
    assert val["loss"] == pytest.approx(book.history[-1]["val/loss"], rel=1e-6)
    assert all(torch.equal(v, last.model[k]) for k, v in model.state_dict().items())  # finish()
    assert last.for_serving().average is None


def test_default_checkpoints_hold_no_average(tmp_path):
    run(tmp_path, "none", 1)
    last = Checkpoint.load(tmp_path / "last.pt")
    assert last.average is None and "average" not in last.to_dict()


@pytest.mark.parametrize("average, stop_at, epochs", [("ema", 1, 3), ("ntasgd", 3, 4)])
def test_a_resumed_run_goes_on_with_the_same_average(tmp_path, average, stop_at, epochs):
    """NT-ASGD (patience 1) starts after epoch 2 here: stopped after epoch 3, mid-average."""
    run(tmp_path / "whole", average, epochs)
    run(tmp_path / "part", average, stop_at)
    stopped = Checkpoint.load(tmp_path / "part" / "last.pt")
    assert stopped.average["started"] and stopped.average["n_averaged"] > 0
    run(tmp_path / "part", average, epochs, resumed=stopped)
    whole = Checkpoint.load(tmp_path / "whole" / "last.pt")
    again = Checkpoint.load(tmp_path / "part" / "last.pt")
    assert whole.average["n_averaged"] == again.average["n_averaged"]
    for key, value in whole.model.items():
        assert torch.equal(value, again.model[key]), key
    for key, value in whole.average["training"].items():
        assert torch.equal(value, again.average["training"][key]), key

    def scores(history):
        return [{k: v for k, v in h.items() if k.startswith("val/")} for h in history]

    assert scores(whole.history) == scores(again.history)
