"""Per-step lr schedules (``optimizer.schedule``): their shape, an exact resume, and the
default (``epoch``) left as it was."""

from __future__ import annotations

import io

import pytest
import torch

from pipeline.config.schemas import OptimizerConfig, TrainerConfig, typed
from pipeline.errors import ConfigError
from pipeline.model.checkpoint import load_checkpoint
from pipeline.training.schedule import EpochSchedule
from tests.training.test_nonfinite import PoisonedAfter, split, train_toy

TOTAL, LR = 100, 0.1


def build(config: OptimizerConfig) -> tuple[torch.optim.Optimizer, EpochSchedule]:
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.AdamW([param], lr=config.lr)
    return optimizer, EpochSchedule(optimizer, config, lambda: TOTAL)


def lrs(optimizer, schedule, steps: int) -> list[float]:
    """The lr each of ``steps`` optimizer steps runs at."""
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return seen


def curve(**fields) -> list[float]:
    optimizer, schedule = build(OptimizerConfig(lr=LR, **fields))
    schedule.start_epoch(1)
    return lrs(optimizer, schedule, TOTAL + 5)  # 5 past the end: the last lr holds


@pytest.mark.parametrize(
    "fields, peak, first, last",
    [
        (dict(schedule="onecycle", warmup_steps=20), 20, LR / 25, LR / 25 / 1e4),
        (dict(schedule="onecycle"), 30, LR / 25, LR / 25 / 1e4),  # torch's pct_start=0.3
        (dict(schedule="cosine"), 0, LR, 0.0),
        (dict(schedule="cosine", warmup_steps=10), 10, LR / 11, 0.0),
        (dict(schedule="linear_warmup", warmup_ratio=0.2), 20, LR / 21, 0.0),
        (dict(schedule="slanted_triangular"), 9, LR / 32, LR / 32),  # cut = floor(99 * 0.1)
        (dict(schedule="slanted_triangular", cut_frac=0.5, ratio=4.0), 49, LR / 4, LR / 4),
    ],
    ids=lambda v: v.get("schedule", "") + str(v) if isinstance(v, dict) else "",
)
def test_the_curve_peaks_at_the_right_step_and_ends_at_its_minimum(fields, peak, first, last):
    seen = curve(**fields)
    assert max(seen) == pytest.approx(LR)
    assert seen.index(max(seen)) == peak
    assert seen[0] == pytest.approx(first, rel=1e-6)
    assert seen[TOTAL - 1] == pytest.approx(last, rel=1e-6, abs=1e-12)
    assert seen[TOTAL:] == [seen[TOTAL - 1]] * 5  # held past the run's last step
    up, down = seen[: peak + 1], seen[peak:TOTAL]
    assert up == sorted(up) and down == sorted(down, reverse=True)


@pytest.mark.parametrize(
    "fields",
    [
        dict(schedule="onecycle", warmup_steps=20),
        dict(schedule="cosine", warmup_steps=10),
        dict(schedule="cosine"),
        dict(schedule="linear_warmup", warmup_steps=7),
        dict(schedule="slanted_triangular"),
    ],
    ids=lambda v: str(v),
)
@pytest.mark.parametrize("stop_at", [5, 37])
def test_a_resumed_schedule_continues_the_same_curve(fields, stop_at):
    whole = curve(**fields)
    optimizer, schedule = build(OptimizerConfig(lr=LR, **fields))
    schedule.start_epoch(1)
    before = lrs(optimizer, schedule, stop_at)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # as a checkpoint is loaded
    optimizer, schedule = build(OptimizerConfig(lr=LR, **fields))  # the order of _restore
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    schedule.start_epoch(2)
    assert before + lrs(optimizer, schedule, TOTAL + 5 - stop_at) == whole


def test_the_default_schedule_is_per_epoch_and_unchanged():
    optimizer, schedule = build(OptimizerConfig(lr=LR))
    assert schedule.per_step is None and schedule.state_dict() == {"plateaus": 0}
    assert schedule.start_epoch(1) == LR
    assert lrs(optimizer, schedule, 10) == [LR] * 10


def test_the_loop_steps_the_schedule_once_per_optimizer_step(tmp_path):
    """2 epochs of 4 steps: the curve is 8 steps long and has reached its end."""
    train, validation = split(40, 0), split(10, 1)
    trainer = TrainerConfig(max_epochs=2, batch_size=10, progress="none", device="cpu")
    optimizer = OptimizerConfig(schedule="linear_warmup", warmup_steps=2)
    train_toy(PoisonedAfter(n=10**9), train, validation, trainer, tmp_path, optimizer)
    saved = load_checkpoint(tmp_path / "last.pt")["schedule"]
    assert saved["total"] == 8 and saved["per_step"]["last_epoch"] == 7


@pytest.mark.parametrize(
    "fields, named",
    [
        (dict(schedule="cosine", decay=0.5), "optimizer.decay=0.5"),
        (dict(schedule="onecycle", plateau_factor=0.5), "optimizer.plateau_factor=0.5"),
        (dict(schedule="cosine", warmup_steps=3, warmup_ratio=0.1), "optimizer.warmup_steps"),
    ],
)
def test_settings_that_fight_a_per_step_schedule_are_refused(fields, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        typed(OptimizerConfig, fields, "optimizer")
