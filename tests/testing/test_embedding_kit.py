"""The embedding kit (pipeline.testing.check_embedding): every built-in embedding passes
it, and each way of breaking the contract fails the check that names it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from torch import nn

from pipeline import registry
from pipeline.contracts import ComponentConfig, Embedding
from pipeline.testing import check_embedding

#: ``pretrained`` is checked as a model rebuilt from a checkpoint is built (no vocabulary,
#: so no vectors file): a table of ``dim`` columns.
CASES = [
    ("learned", dict(dim=5)),
    ("learned", dict(dim=5, dropout_kind="locked", token_dropout=0.2)),
    ("pretrained", dict(dim=5)),
    ("pretrained", dict(dim=5, freeze=True)),
]


def test_every_registered_embedding_is_covered():
    assert {name for name, _ in CASES} == {
        e.name for e in registry.embeddings.entries() if e.provider == "seqpipe"
    }


@pytest.mark.parametrize("name, fields", CASES, ids=str)
def test_every_registered_embedding_passes_the_kit(name, fields):
    report = check_embedding(name, **fields)
    assert report.ok, str(report)
    assert len(report.passed) == 7


@dataclass
class TinyConfig(ComponentConfig):
    dim: int = 4


class Table(Embedding):
    def __init__(self, config, vocab_size, pad_id):
        super().__init__(config, vocab_size, pad_id)
        self.table = nn.Embedding(vocab_size, config.dim, padding_idx=pad_id)
        self.output_dim = config.dim

    def forward(self, ids):
        return self.table(ids)


class CentresOverTheRow(Table):
    """Subtracts the mean over every step, padding included."""

    def forward(self, ids):
        vectors = self.table(ids)
        return vectors - vectors.mean(dim=1, keepdim=True)


class WrongOutputDim(Table):
    def __init__(self, config, vocab_size, pad_id):
        super().__init__(config, vocab_size, pad_id)
        self.output_dim = config.dim + 1


class DropoutInEval(Table):
    def forward(self, ids):
        return nn.functional.dropout(self.table(ids), 0.5, training=True)


class TransposedWeight(Table):
    @property
    def weight(self):
        return self.table.weight.t()


@pytest.mark.parametrize(
    "cls, check, words",
    [
        (CentresOverTheRow, "padding", "padded with pad_id"),
        (WrongOutputDim, "dims", "expected (3, 7, 5)"),
        (DropoutInEval, "eval determinism", "dropout"),
        (TransposedWeight, "weight", "[vocab_size, output_dim]"),
    ],
)
def test_the_kit_catches_a_broken_embedding(cls, check, words):
    report = check_embedding(cls, TinyConfig(name="broken"))
    assert check in report.failed, str(report)
    assert words in report.failed[check]


def test_a_correct_unregistered_embedding_passes_with_another_pad_id():
    assert check_embedding(Table, TinyConfig(name="table"), vocab_size=9, pad_id=3).ok
