"""The pooler kit (pipeline.testing.check_pooler): every built-in pooler passes it, and each
way of breaking the contract fails the check that names it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline import registry
from pipeline.contracts import ComponentConfig, Pooler
from pipeline.testing import CheckError, check_pooler

SMALL = {"attention": {"attention_size": 4}}


def test_the_first_party_poolers_are_all_registered():
    assert {"last", "mean", "max", "concat", "auto", "attention"} <= set(registry.poolers.names())


@pytest.mark.parametrize("name", registry.poolers.names())
def test_every_registered_pooler_passes_the_kit(name):
    report = check_pooler(name, **SMALL.get(name, {}))
    assert report.ok, str(report)
    assert len(report.passed) == 7


class MeanOverPadding(Pooler):
    """Averages every step, padding included."""

    def forward(self, output, mask):
        return output.sequence.mean(dim=1)


class WrongOutputDim(MeanOverPadding):
    def __init__(self, config, input_dim):
        super().__init__(config, input_dim)
        self.output_dim = 2 * input_dim


class NaNOnEmptyRows(Pooler):
    """Max over real tokens with no guard: an empty row gives -inf."""

    def forward(self, output, mask):
        return output.sequence.masked_fill(~mask.unsqueeze(2), float("-inf")).max(1).values


class Detached(Pooler):
    def __init__(self, config, input_dim):
        super().__init__(config, input_dim)
        self.scale = nn.Parameter(torch.ones(input_dim))

    def forward(self, output, mask):
        weights = mask.unsqueeze(2).to(output.sequence.dtype)
        mean = (output.sequence * weights).sum(1) / weights.sum(1).clamp(min=1)
        return mean.detach() * self.scale


@pytest.mark.parametrize(
    "cls, check, words",
    [
        (MeanOverPadding, "padding", "alone and inside a padded batch"),
        (WrongOutputDim, "dims", "expected (4, 12)"),
        (NaNOnEmptyRows, "empty rows", "non-finite"),
        (Detached, "gradients", "encoder's sequence"),
    ],
)
def test_the_kit_catches_a_broken_pooler(cls, check, words):
    report = check_pooler(cls, ComponentConfig(name="broken"))
    assert check in report.failed, str(report)
    assert words in report.failed[check]
    with pytest.raises(CheckError, match=check):
        report.assert_ok()
