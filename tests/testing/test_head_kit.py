"""The head kit (pipeline.testing.check_head): every built-in head passes it, and each way
of breaking the contract fails the check that names it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from pipeline import registry
from pipeline.contracts import ComponentConfig, Head
from pipeline.testing import check_head

CASES = [
    ("classifier", dict(), True),
    ("classifier", dict(hidden_size=4, activation="gelu", dropout=0.1), True),
    ("classifier", dict(hidden_size=4, batch_norm=True), False),  # BatchNorm1d: [B, H] only
    ("lm", dict(dropout=0.2), True),
    ("tagger", dict(dropout=0.1), True),
]


def test_every_registered_head_is_covered():
    assert {name for name, _, _ in CASES} == {
        e.name for e in registry.heads.entries() if e.provider == "seqpipe"
    }


@pytest.mark.parametrize("name, fields, takes_steps", CASES, ids=str)
def test_every_registered_head_passes_the_kit(name, fields, takes_steps):
    report = check_head(name, **fields)
    assert report.ok, str(report)
    assert ("sequence" in report.passed) == takes_steps
    assert len(report.passed) == (7 if takes_steps else 6)


def test_the_lm_head_is_checked_as_a_sequence_head():
    assert "sequence" in check_head("lm", sequence=True).passed


@dataclass
class TinyConfig(ComponentConfig):
    pass


class Linear(Head):
    def __init__(self, config, input_dim, num_outputs):
        super().__init__(config, input_dim, num_outputs)
        self.out = nn.Linear(input_dim, num_outputs)

    def forward(self, features):
        return self.out(features)


class OneLogitTooMany(Linear):
    def __init__(self, config, input_dim, num_outputs):
        super().__init__(config, input_dim, num_outputs + 1)


class NormalisesOverTheBatch(Linear):
    def forward(self, features):
        return self.out(features - features.mean(dim=0, keepdim=True))


class DropoutInEval(Linear):
    def forward(self, features):
        return self.out(nn.functional.dropout(features, 0.5, training=True))


class UnusedParameter(Linear):
    def __init__(self, config, input_dim, num_outputs):
        super().__init__(config, input_dim, num_outputs)
        self.forgotten = nn.Parameter(torch.zeros(3))


class MixesSteps(Linear):
    """Adds the mean over the steps: a step's logits read the other steps."""

    def forward(self, features):
        if features.dim() == 3:
            features = features + features.mean(dim=1, keepdim=True)
        return self.out(features)


@pytest.mark.parametrize(
    "cls, check, words",
    [
        (OneLogitTooMany, "dims", "expected (4, 3)"),
        (NormalisesOverTheBatch, "rows", "alone and inside a batch"),
        (DropoutInEval, "eval determinism", "dropout"),
        (UnusedParameter, "gradients", "forgotten"),
        (MixesSteps, "sequence", "other steps"),
    ],
)
def test_the_kit_catches_a_broken_head(cls, check, words):
    report = check_head(cls, TinyConfig(name="broken"))
    assert check in report.failed, str(report)
    assert words in report.failed[check]


def test_a_classifier_only_head_fails_when_asked_for_sequences():
    report = check_head("classifier", hidden_size=4, batch_norm=True, sequence=True)
    assert "sequence" in report.failed, str(report)
