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
    ("char_cnn", dict(char_dim=4, char_filters=6)),
    ("word_char", dict(dim=5, char_dim=4, char_filters=3, char_kernel=2)),
    ("word_char", dict(dim=5, char_encoder="lstm", char_hidden=3, dropout_kind="locked")),
]


def test_every_registered_embedding_is_covered():
    assert {name for name, _ in CASES} == {
        e.name for e in registry.embeddings.entries() if e.provider == "seqpipe"
    }


@pytest.mark.parametrize("name, fields", CASES, ids=str)
def test_every_registered_embedding_passes_the_kit(name, fields):
    report = check_embedding(name, **fields)
    assert report.ok, str(report)
    characters = getattr(registry.embeddings.get(name).cls, "uses_characters", False)
    assert len(report.passed) == (8 if characters else 7)  # + "characters"


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


@dataclass
class TinyCharConfig(ComponentConfig):
    dim: int = 4


class Spelled(Embedding):
    """A correct character-aware embedding: the sum of a word's character vectors."""

    uses_characters = True

    def __init__(self, config, vocab_size, pad_id, num_chars):
        super().__init__(config, vocab_size, pad_id)
        self.chars = nn.Embedding(num_chars, config.dim, padding_idx=0)
        self.output_dim = config.dim

    def forward(self, ids, chars):
        return self.chars(chars).sum(dim=2)


class MeanOverPaddedCharacters(Spelled):
    """Averages over every character position, the padded ones included."""

    def forward(self, ids, chars):
        return self.chars(chars).mean(dim=2)


class BackwardFromThePadding(Spelled):
    """A plain bidirectional LSTM over the padded characters: its backward state at the first
    character has read the padding after the word first."""

    def __init__(self, config, vocab_size, pad_id, num_chars):
        super().__init__(config, vocab_size, pad_id, num_chars)
        self.lstm = nn.LSTM(config.dim, config.dim, batch_first=True, bidirectional=True)
        self.output_dim = 2 * config.dim

    def forward(self, ids, chars):
        words = self.chars(chars.flatten(0, 1))  # [B*T, L, D]
        out, _ = self.lstm(words)
        return out[:, 0].view(*ids.shape, -1)


class IgnoresCharacters(Spelled):
    """Says it reads characters, then looks the word id up only."""

    def __init__(self, config, vocab_size, pad_id, num_chars):
        super().__init__(config, vocab_size, pad_id, num_chars)
        self.table = nn.Embedding(vocab_size, config.dim, padding_idx=pad_id)
        del self.chars

    def forward(self, ids, chars):
        return self.table(ids)


class CharsOnlyOfWrongWidth(Spelled):
    """Claims a word + char width but returns the char vectors alone."""

    def __init__(self, config, vocab_size, pad_id, num_chars):
        super().__init__(config, vocab_size, pad_id, num_chars)
        self.output_dim = 2 * config.dim


def test_a_correct_character_embedding_passes():
    report = check_embedding(Spelled, TinyCharConfig(name="spelled"), num_chars=7)
    assert report.ok, str(report)
    assert "characters" in report.passed


@pytest.mark.parametrize(
    "cls, check, words",
    [
        (MeanOverPaddedCharacters, "padding", "its real characters only"),
        (BackwardFromThePadding, "padding", "its real characters only"),
        (IgnoresCharacters, "characters", "ignores chars"),
        (CharsOnlyOfWrongWidth, "dims", "expected (3, 7, 8)"),
    ],
)
def test_the_kit_catches_a_broken_character_embedding(cls, check, words):
    report = check_embedding(cls, TinyCharConfig(name="broken"))
    assert check in report.failed, str(report)
    assert words in report.failed[check]


def test_a_correct_unregistered_embedding_passes_with_another_pad_id():
    assert check_embedding(Table, TinyConfig(name="table"), vocab_size=9, pad_id=3).ok
