"""check_encoder's ``state`` check: a carried state must be each row's at its last real
token (continuing from a padded batch's state equals continuing each row alone); the state
may be any nest of tensors (here a dict)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.contracts import ComponentConfig, Encoder, EncoderOutput
from pipeline.masking import lengths_of
from pipeline.testing import check_encoder


@dataclass
class GRUConfig(ComponentConfig):
    hidden_size: int = 4


class RunsOnThroughPadding(Encoder):
    """A left-to-right GRU over the padded rows as they are: its final state has read the
    padding of every short row."""

    causal = True

    def __init__(self, config: GRUConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.rnn = nn.GRU(input_dim, config.hidden_size, batch_first=True)
        self.output_dim = config.hidden_size

    def forward(self, x, mask, state=None):
        h = None if state is None else state["h"]
        out, h = self.rnn(x, h)
        return EncoderOutput(out * mask.unsqueeze(2), state={"h": h})


class Packed(RunsOnThroughPadding):
    """The same GRU over packed rows: the state is each row's at its last real token."""

    def forward(self, x, mask, state=None):
        lengths = lengths_of(mask).clamp(min=1).cpu()  # an empty row reads one padding step
        h = None if state is None else state["h"]
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h = self.rnn(packed, h)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return EncoderOutput(out * mask.unsqueeze(2), state={"h": h})


def test_a_state_that_runs_on_through_padding_fails_the_state_check():
    report = check_encoder(RunsOnThroughPadding, GRUConfig(name="gru"))
    assert list(report.failed) == ["state"], str(report)  # every other check passes
    assert "each row's last real token" in report.failed["state"]


def test_a_state_taken_at_each_rows_last_real_token_passes():
    report = check_encoder(Packed, GRUConfig(name="packed"))
    assert report.ok, str(report)
    assert "state" in report.passed


@pytest.mark.parametrize("cls", [RunsOnThroughPadding, Packed])
def test_a_non_causal_encoder_is_not_asked_for_a_state(cls):
    not_causal = type(cls.__name__, (cls,), {"causal": False})
    report = check_encoder(not_causal, GRUConfig(name="x"))
    assert "state" not in report.passed and "state" not in report.failed
