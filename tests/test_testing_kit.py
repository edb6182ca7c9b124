"""The plugin authors' kit, ``pipeline.testing.check_encoder``: every built-in encoder passes
it, and each way of breaking the contract is caught with a message that names it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from pipeline import registry
from pipeline.contracts import ComponentConfig, Encoder, EncoderOutput
from pipeline.testing import EncoderCheckError, check_encoder

#: Small settings per encoder (the kit only needs a few units); others use their defaults.
SMALL = {
    "transformer": dict(d_model=8, nhead=2, dim_feedforward=16, num_layers=2),
    "cnn": dict(channels=3, widths=[1, 2, 3]),
}
RECURRENT_SHAPES = [
    dict(num_layers=1, bidirectional=False),
    dict(num_layers=2, bidirectional=False, dropout=0.3),  # causal: the state check, 2 layers
    dict(num_layers=2, bidirectional=True, dropout=0.3),
    dict(num_layers=1, bidirectional=True),
]


def cases() -> list[tuple[str, dict]]:
    out = []
    for name in registry.encoders.names():
        fields = {f for f in registry.encoders.get(name).config.__dataclass_fields__}
        if {"hidden_size", "bidirectional", "num_layers"} <= fields:
            for shape in RECURRENT_SHAPES:
                out.append(
                    (name, {k: v for k, v in dict(hidden_size=5, **shape).items() if k in fields})
                )
        else:
            out.append((name, SMALL.get(name, {})))
    return out


def test_the_first_party_encoders_are_all_registered():
    expected = {"rnn", "lstm", "gru", "scratch_lstm", "lstm_attention", "transformer", "cnn"}
    assert expected <= set(registry.encoders.names())


@pytest.mark.parametrize(
    "name, fields", cases(), ids=lambda v: v if isinstance(v, str) else str(sorted(v.items()))
)
def test_every_registered_encoder_passes_the_kit(name, fields):
    report = check_encoder(name, **fields)
    entry = registry.encoders.get(name)
    causal = entry.cls(entry.config(name=name, **fields), 6).causal
    assert ("causal" in report.passed) == causal
    assert report.ok, str(report)
    assert len(report.passed) == (9 if causal else 7)


# -- encoders that break the contract, one way each ------------------------------------


@dataclass
class TinyConfig(ComponentConfig):
    hidden_size: int = 4


class Base(Encoder):
    def __init__(self, config: TinyConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.rnn = nn.GRU(input_dim, config.hidden_size, batch_first=True)
        self.output_dim = config.hidden_size

    def forward(self, x, mask, state=None):
        out, _ = self.rnn(x)
        return EncoderOutput(out * mask.unsqueeze(2))


class ReadsPaddingBackwards(Base):
    """Runs right to left over the padded row, so padding comes first."""

    def forward(self, x, mask, state=None):
        out, _ = self.rnn(x.flip(1))
        return EncoderOutput(out.flip(1) * mask.unsqueeze(2))


class UnusedParameter(Base):
    def __init__(self, config, input_dim):
        super().__init__(config, input_dim)
        self.forgotten = nn.Linear(3, 3)


class DropoutInEval(Base):
    def forward(self, x, mask, state=None):
        out = super().forward(x, mask).sequence
        return EncoderOutput(nn.functional.dropout(out, 0.5, training=True))


class WrongOutputDim(Base):
    def __init__(self, config, input_dim):
        super().__init__(config, input_dim)
        self.output_dim = config.hidden_size + 1


class NaNOnEmptyRows(Base):
    """Softmax over an all-masked row: NaN."""

    def forward(self, x, mask, state=None):
        out = super().forward(x, mask).sequence
        scores = out.sum(2).masked_fill(~mask, float("-inf"))
        return EncoderOutput(out, pooled=(torch.softmax(scores, 1).unsqueeze(2) * out).sum(1))


@pytest.mark.parametrize(
    "cls, check, words",
    [
        (ReadsPaddingBackwards, "padding", "alone and inside a padded batch"),
        (UnusedParameter, "gradients", "forgotten.weight"),
        (DropoutInEval, "eval determinism", "dropout"),
        (WrongOutputDim, "dims", "expected (4, 7, 5)"),
        (NaNOnEmptyRows, "empty rows", "non-finite pooled"),
    ],
)
def test_the_kit_catches_a_broken_contract(cls, check, words):
    report = check_encoder(cls, TinyConfig(name="tiny"))
    failed = {message.split(":")[0] for message in report.failures}
    assert check in failed, str(report)
    assert words in str(report)
    with pytest.raises(EncoderCheckError, match=check):
        report.assert_ok()


def test_a_correct_unregistered_encoder_passes():
    assert check_encoder(Base, TinyConfig(name="tiny")).ok


def test_an_encoder_that_cannot_be_built_is_reported_not_raised():
    class Broken(Base):
        def __init__(self, config, input_dim):
            raise RuntimeError("boom")

    report = check_encoder(Broken, TinyConfig(name="broken"))
    assert not report.ok and "construct" in report.failures[0] and "boom" in report.failures[0]


class ClaimsCausalButIsNot(Base):
    causal = True

    def forward(self, x, mask, state=None):
        out = super().forward(x.flip(1), mask).sequence  # reads the row right to left
        return EncoderOutput(out)


class LosesStateBetweenCalls(Base):
    causal = True

    def forward(self, x, mask, state=None):
        out, h = self.rnn(x)  # ignores the state it is given
        return EncoderOutput(out * mask.unsqueeze(2), state=h)


@pytest.mark.parametrize(
    "cls, words",
    [
        (ClaimsCausalButIsNot, "later tokens change earlier steps"),
        (LosesStateBetweenCalls, "two halves"),
    ],
)
def test_the_kit_checks_what_causal_encoders_promise(cls, words):
    report = check_encoder(cls, TinyConfig(name="tiny"))
    assert any(f.startswith("causal:") and words in f for f in report.failures), str(report)


def test_which_encoders_are_causal():
    def causal(name, **fields):
        entry = registry.encoders.get(name)
        return entry.cls(entry.config(name=name, **fields), 4).causal

    assert causal("lstm") and causal("gru") and causal("rnn") and causal("scratch_lstm")
    assert not causal("lstm", bidirectional=True)
    assert not causal("transformer", d_model=8, nhead=2) and not causal("cnn")
