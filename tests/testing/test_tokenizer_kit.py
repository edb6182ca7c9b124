"""The tokenizer kit (pipeline.testing.check_tokenizer): every built-in tokenizer passes
it, and each way of breaking the contract fails the check that names it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import registry
from pipeline.contracts import ComponentConfig
from pipeline.testing import check_tokenizer

CASES = [
    ("basic_english", dict()),
    ("basic_english", dict(min_freq=3)),
    ("char", dict()),
    ("char", dict(lowercase=True)),
    ("word", dict()),
    ("word", dict(split="whitespace", eos=True, lowercase=False)),
]


def test_every_registered_tokenizer_is_covered():
    assert {name for name, _ in CASES} == {
        e.name for e in registry.tokenizers.entries() if e.provider == "seqpipe"
    }


@pytest.mark.parametrize("name, fields", CASES, ids=str)
def test_every_registered_tokenizer_passes_the_kit(name, fields):
    report = check_tokenizer(name, **fields)
    assert report.ok, str(report)
    assert len(report.passed) == 7


@dataclass
class SpaceConfig(ComponentConfig):
    pass


class Spaces:
    """Splits on whitespace; <pad> = 0, <unk> = 1: a correct minimal tokenizer."""

    separator = " "
    pad_id, unk_id = 0, 1

    def __init__(self, config):
        self.config = config
        self.itos = ["<pad>", "<unk>"]

    def tokenize(self, text):
        return text.split()

    def fit(self, texts):
        seen = {word for text in texts for word in self.tokenize(text)}
        self.itos = ["<pad>", "<unk>", *sorted(seen)]

    def encode_batch(self, texts):
        stoi = {w: i for i, w in enumerate(self.itos)}
        return [[stoi.get(w, self.unk_id) for w in self.tokenize(t)] for t in texts]

    def decode(self, ids):
        return " ".join(self.itos[i] for i in ids if i > 1)

    @property
    def vocab_size(self):
        return len(self.itos)

    def fingerprint(self):
        return hashlib.sha256(json.dumps(self.itos).encode()).hexdigest()

    def save(self, directory):
        (Path(directory) / "vocab.json").write_text(json.dumps(self.itos))

    @classmethod
    def load(cls, directory):
        tok = cls(SpaceConfig(name="spaces"))
        tok.itos = json.loads((Path(directory) / "vocab.json").read_text())
        return tok


class PadsUnknownWords(Spaces):
    def encode_batch(self, texts):
        return [[0 if i == self.unk_id else i for i in ids] for ids in super().encode_batch(texts)]


class FingerprintOfTheInstance(Spaces):
    def fingerprint(self):
        return str(id(self))


class SavesNothing(Spaces):
    def save(self, directory):
        pass

    @classmethod
    def load(cls, directory):
        return cls(SpaceConfig(name="spaces"))


class ShoutsOnDecode(Spaces):
    def decode(self, ids):
        return super().decode(ids).upper()


class FingerprintOfTheConfigOnly(Spaces):
    def fingerprint(self):
        return "spaces-v1"


@pytest.mark.parametrize(
    "cls, check, words",
    [
        (PadsUnknownWords, "unicode", "pad_id must never come out of real text"),
        (FingerprintOfTheInstance, "fingerprint", "two fits of the same texts"),
        (FingerprintOfTheConfigOnly, "fingerprint", "fits of different texts"),
        (SavesNothing, "save/load", "after load"),
        (ShoutsOnDecode, "round trip", "normalised text"),
    ],
)
def test_the_kit_catches_a_broken_tokenizer(cls, check, words):
    report = check_tokenizer(cls, SpaceConfig(name="broken"))
    assert check in report.failed, str(report)
    assert words in report.failed[check]


def test_a_correct_unregistered_tokenizer_passes():
    report = check_tokenizer(Spaces, SpaceConfig(name="spaces"))
    assert report.ok, str(report)
