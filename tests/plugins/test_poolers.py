"""Poolers respect the mask: padding never changes their output; empty rows give zeros."""

import pytest
import torch

from pipeline import registry
from pipeline.contracts import EncoderOutput


def build(name: str, dim: int = 6):
    entry = registry.poolers.get(name)
    return entry.cls(entry.config(name=name), dim)


@pytest.mark.parametrize("name", ["last", "mean", "max", "auto", "attention", "concat"])
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


@pytest.mark.parametrize("name", ["last", "mean", "max", "auto", "attention", "concat"])
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


def test_attention_weights_cover_real_tokens_only():
    torch.manual_seed(0)
    pooler = build("attention")
    seq = torch.randn(3, 5, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    pooled, weights = pooler.attend(EncoderOutput(seq), mask)
    torch.testing.assert_close(weights.sum(1), torch.tensor([1.0, 1.0, 0.0]))
    assert (weights[~mask] == 0).all() and (weights[mask] > 0).all()
    torch.testing.assert_close(pooled[1], (weights[1, :2, None] * seq[1, :2]).sum(0))
    assert torch.equal(pooler(EncoderOutput(seq), mask), pooled)
    assert torch.equal(pooler.last_weights, weights)


def test_auto_uses_the_encoders_own_pooled_summary_else_max():
    seq, pooled = torch.randn(2, 3, 4), torch.randn(2, 4)
    mask = torch.ones(2, 3, dtype=torch.bool)
    auto = build("auto", 4)
    assert torch.equal(auto(EncoderOutput(seq, pooled=pooled), mask), pooled)
    assert torch.equal(auto(EncoderOutput(seq), mask), build("max", 4)(EncoderOutput(seq), mask))


def test_concat_is_last_max_mean_three_times_as_wide():
    seq = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    concat = build("concat", 4)
    assert concat.output_dim == 12
    out = EncoderOutput(seq)
    parts = [build(name, 4)(out, mask) for name in ("last", "max", "mean")]
    assert torch.equal(concat(out, mask), torch.cat(parts, dim=1))
    final = torch.randn(3, 4)  # an encoder's own final state is its "last", as for pooler=last
    assert torch.equal(concat(EncoderOutput(seq, final=final), mask)[:, :4], final)


def test_concat_after_a_bidirectional_lstm_is_exact_under_padding():
    """A padded batch pools each row to what the row alone (no padding) pools to."""
    torch.manual_seed(0)
    entry = registry.encoders.get("lstm")
    encoder = entry.cls(
        entry.config(name="lstm", hidden_size=5, bidirectional=True, num_layers=1), 3
    ).eval()
    pooler = build("concat", encoder.output_dim)
    x, lengths = torch.randn(3, 7, 3), torch.tensor([7, 4, 2])
    mask = torch.arange(7)[None] < lengths[:, None]
    with torch.no_grad():
        batch = pooler(encoder(x, mask), mask)
        assert batch.shape == (3, 3 * encoder.output_dim)
        for row, length in enumerate(lengths.tolist()):
            alone_mask = mask[row : row + 1, :length]
            alone = pooler(encoder(x[row : row + 1, :length], alone_mask), alone_mask)
            torch.testing.assert_close(alone[0], batch[row], atol=1e-6, rtol=1e-5)
