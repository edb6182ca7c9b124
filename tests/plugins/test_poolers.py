"""Poolers respect the mask: padding never changes their output; empty rows give zeros."""

import pytest
import torch

from pipeline import registry
from pipeline.contracts import EncoderOutput


def build(name: str, dim: int = 6):
    entry = registry.poolers.get(name)
    return entry.cls(entry.config(name=name), dim)


@pytest.mark.parametrize("name", ["last", "mean", "max"])
def test_padding_values_do_not_change_the_output(name):
    torch.manual_seed(0)
    pooler = build(name)
    seq = torch.randn(4, 9, 6)
    lengths = torch.tensor([9, 5, 1, 3])
    mask = torch.arange(9)[None] < lengths[:, None]
    noisy = seq.clone()
    noisy[~mask] = torch.randn(int((~mask).sum()), 6) * 100
    a = pooler(EncoderOutput(seq), mask)
    b = pooler(EncoderOutput(noisy), mask)
    torch.testing.assert_close(a, b)
    # and equal to pooling each row alone, without padding
    for row, length in enumerate(lengths.tolist()):
        alone = pooler(EncoderOutput(seq[row : row + 1, :length]), mask[row : row + 1, :length])
        torch.testing.assert_close(alone[0], a[row])


def test_reference_values():
    seq = torch.tensor([[[1.0], [3.0], [-50.0]], [[-2.0], [-4.0], [99.0]]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    out = EncoderOutput(seq)
    assert build("mean", 1)(out, mask).flatten().tolist() == [2.0, -3.0]
    assert build("max", 1)(out, mask).flatten().tolist() == [3.0, -2.0]
    assert build("last", 1)(out, mask).flatten().tolist() == [3.0, -4.0]


@pytest.mark.parametrize("name", ["last", "mean", "max"])
def test_zero_length_rows_give_zeros(name):
    seq = torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, False, False], [False] * 4])
    pooled = build(name)(EncoderOutput(seq), mask)
    assert torch.isfinite(pooled).all()
    assert pooled[1].abs().sum() == 0


def test_last_prefers_the_encoders_own_final_state():
    seq, final = torch.randn(2, 3, 4), torch.randn(2, 4)
    mask = torch.ones(2, 3, dtype=torch.bool)
    assert torch.equal(build("last", 4)(EncoderOutput(seq, final=final), mask), final)
