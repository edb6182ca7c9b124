"""Every kit reports a broken component as a named failure and never raises: an unknown
name, a declare target that does not import, a config not derived from ComponentConfig, a
constructor, a forward or a task method that raises (``sys.exit`` included)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest
from torch import nn

from pipeline import registry
from pipeline.testing import (
    check_embedding,
    check_encoder,
    check_head,
    check_pooler,
    check_task,
    check_tokenizer,
)

KITS = {
    "encoder": (check_encoder, registry.encoders),
    "pooler": (check_pooler, registry.poolers),
    "embedding": (check_embedding, registry.embeddings),
    "head": (check_head, registry.heads),
    "tokenizer": (check_tokenizer, registry.tokenizers),
}


@dataclass
class NoNameConfig:  # not derived from ComponentConfig: no ``name`` field
    size: int = 4


class Explodes(nn.Module):
    """Any kind: builds with any arguments; every use raises."""

    output_dim = 4

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, *args, **kwargs):
        raise RuntimeError("kaboom")

    fit = encode_batch = forward


class CannotBuild(Explodes):
    def __init__(self, *args, **kwargs):
        raise ValueError("bad config value")


@pytest.mark.parametrize("kind", KITS)
def test_a_config_without_name_is_a_named_config_failure(kind, monkeypatch):
    kit, reg = KITS[kind]
    entry = registry.Entry("zz_no_name", Explodes, NoNameConfig, provider="my-dist")
    monkeypatch.setitem(reg._entries, "zz_no_name", entry)  # as a plugin's declare would
    for report in (kit("zz_no_name"), kit(Explodes, NoNameConfig())):
        assert "config" in report.failed, str(report)
        assert "ComponentConfig" in report.failed["config"]


@pytest.mark.parametrize("kind", KITS)
def test_a_bad_declare_target_is_a_named_import_failure(kind, monkeypatch):
    kit, reg = KITS[kind]
    entry = registry.Entry("zz_typo", "my_pkg.nowhere:Thing", NoNameConfig, provider="my-dist")
    monkeypatch.setitem(reg._entries, "zz_typo", entry)
    report = kit("zz_typo")
    assert list(report.failed) == ["import"], str(report)
    assert "my-dist" in report.failed["import"] and "my_pkg.nowhere" in report.failed["import"]


@pytest.mark.parametrize("kind", KITS)
def test_a_name_the_registry_disabled_is_a_named_failure_saying_why(kind, monkeypatch):
    kit, reg = KITS[kind]
    monkeypatch.setattr(reg, "_unavailable", dict(reg._unavailable))  # undone after the test
    monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    reg.declare("zz_disabled", NoNameConfig, "my_pkg.thing:Thing")  # disabled, not raised
    report = kit("zz_disabled")
    assert list(report.failed) == ["registered"], str(report)
    assert "disabled" in report.failed["registered"]
    assert "ComponentConfig" in report.failed["registered"]


@pytest.mark.parametrize("kind", KITS)
def test_an_unknown_name_is_a_named_failure(kind):
    kit, _ = KITS[kind]
    report = kit("zz_never_registered")
    assert "registered" in report.failed and "pipeline.plugins" in report.failed["registered"]


@pytest.mark.parametrize("kind", KITS)
def test_a_constructor_or_a_forward_that_raises_is_named(kind):
    kit, _ = KITS[kind]
    config = registry.ComponentConfig(name="broken")
    built = kit(CannotBuild, config)
    assert "construct" in built.failed and "bad config value" in built.failed["construct"]
    used = kit(Explodes, config)
    assert not used.ok and "kaboom" in str(used)
    assert "config" in used.passed  # the checks that do not use it still pass


class BrokenTask:
    """Every method raises; ``checkpoint_extra`` even exits the process."""

    metric_names = ("train/loss", "val/loss")
    unit = "samples"

    def __getattr__(self, name):
        raise RuntimeError(f"no {name}")

    def checkpoint_extra(self):
        sys.exit(3)


def test_a_task_whose_methods_raise_is_reported_check_by_check():
    report = check_task(BrokenTask(), nn.Linear(2, 2))
    assert report.passed == ["declares"]
    assert set(report.failed) == {"batches", "resume", "loss", "metrics", "checkpoint"}
    assert "no train_batches" in report.failed["batches"]
    assert "SystemExit" in report.failed["checkpoint"]


def test_a_task_with_endless_batches_does_not_hang_the_kit():
    from pipeline.contracts import EpochBatches

    class Endless(BrokenTask):
        def train_batches(self, epoch, start):
            return EpochBatches(steps=2, batches=iter(int, 1))  # never ends

    report = check_task(Endless(), nn.Linear(2, 2))
    assert "says 2 steps but gave 3 batches" in report.failed["batches"]
