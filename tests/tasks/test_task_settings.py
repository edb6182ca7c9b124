"""A task kind declared with a subclass of ``TaskConfig`` has settings of its own under
``task.``: the run checks ``task`` against that subclass, not against the core's schema."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pipeline.config.schemas import TaskConfig
from pipeline.errors import ConfigError
from pipeline.registry import describe
from pipeline.run.runner import validate
from pipeline.tasks import kinds
from tests.run.test_runner import composed


@dataclass
class WeightedConfig(TaskConfig):
    positive_weight: float = describe("loss weight of the positive class", 1.0, min=0.0)


class WeightedTask:
    """Enough of a task for ``validate``: it checks nothing of its own."""

    metric_names = ("train/loss", "val/loss", "val/accuracy")

    def __init__(self, cfg) -> None:
        self.cfg = cfg


@pytest.fixture
def weighted_kind(monkeypatch):
    monkeypatch.setattr(kinds, "_entries", dict(kinds._entries))  # undone after the test
    kinds.register("zz_weighted", config=WeightedConfig)(WeightedTask)


def test_a_kinds_own_task_setting_is_accepted_and_typed(weighted_kind):
    cfg = composed("task.type=zz_weighted", "+task.positive_weight=2.5")
    sections = validate(cfg)
    assert isinstance(sections.task_config, WeightedConfig)
    assert sections.task_config.positive_weight == 2.5


def test_a_kinds_own_task_setting_keeps_its_bounds(weighted_kind):
    with pytest.raises(ConfigError, match="task.positive_weight"):
        validate(composed("task.type=zz_weighted", "+task.positive_weight=-1"))


def test_another_kind_still_refuses_the_setting():
    with pytest.raises(ConfigError, match="Unknown key task.positive_weight"):
        validate(composed("+task.positive_weight=2.5"))
