"""Recurrent encoders: dims, exactness under padding (both directions), gradients."""

import pytest
import torch

from pipeline import registry

SHAPES = [
    dict(num_layers=1, bidirectional=False),
    dict(num_layers=2, bidirectional=False),
    dict(num_layers=1, bidirectional=True),
    dict(num_layers=2, bidirectional=True),
]


def build(name: str, input_dim: int = 5, **fields):
    entry = registry.encoders.get(name)
    return entry.cls(entry.config(name=name, hidden_size=7, **fields), input_dim)


@pytest.mark.parametrize(
    "shape", SHAPES, ids=lambda s: f"L{s['num_layers']}-bi{s['bidirectional']}"
)
@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_a_sequence_alone_equals_it_inside_a_padded_batch(name, shape):
    torch.manual_seed(0)
    encoder = build(name, **shape).eval()
    directions = 2 if shape["bidirectional"] else 1
    assert encoder.output_dim == 7 * directions
    x = torch.randn(4, 8, 5)
    lengths = torch.tensor([8, 3, 1, 0])
    mask = torch.arange(8)[None] < lengths[:, None]
    batch = encoder(x, mask)
    assert batch.sequence.shape == (4, 8, 7 * directions)
    assert batch.final.shape == (4, 7 * directions)
    for row, length in enumerate(lengths.tolist()):
        if length == 0:
            assert batch.final[row].abs().sum() == 0
            continue
        alone = encoder(x[row : row + 1, :length], mask[row : row + 1, :length])
        torch.testing.assert_close(
            alone.sequence[0], batch.sequence[row, :length], atol=1e-6, rtol=1e-5
        )
        torch.testing.assert_close(alone.final[0], batch.final[row], atol=1e-6, rtol=1e-5)
    assert batch.sequence[~mask].abs().sum() == 0  # padding steps are zero


def test_backward_direction_final_state_sees_the_whole_sequence():
    """The backward half of `final` is the backward RNN's state after reading token 0."""
    torch.manual_seed(0)
    encoder = build("lstm", bidirectional=True).eval()
    x = torch.randn(1, 6, 5)
    mask = torch.ones(1, 6, dtype=torch.bool)
    out = encoder(x, mask)
    backward = encoder.layers[0][1]
    expected, _ = backward(x.flip(1))
    torch.testing.assert_close(out.final[0, 7:], expected[0, -1])
    torch.testing.assert_close(out.sequence[0, 0, 7:], expected[0, -1])


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_every_parameter_receives_a_gradient(name):
    encoder = build(name, num_layers=2, bidirectional=True, dropout=0.1)
    x = torch.randn(3, 5, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out = encoder(x, mask)
    (out.sequence.sum() + out.final.sum()).backward()
    for pname, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_lstm_attention_pools_with_weights_over_real_tokens():
    torch.manual_seed(0)
    encoder = build("lstm_attention", bidirectional=True, attention_size=4).eval()
    x = torch.randn(2, 6, 5)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    out = encoder(x, mask)
    assert out.pooled.shape == (2, 14) and out.attention.shape == (2, 6)
    torch.testing.assert_close(out.attention.sum(1), torch.ones(2))
    assert (out.attention[~mask] == 0).all()
    expected = (out.attention.unsqueeze(2) * out.sequence).sum(1)
    torch.testing.assert_close(out.pooled, expected)


def test_lstm_attention_is_used_by_the_default_pooler():
    from hydra import compose, initialize_config_module

    from pipeline.model.assembly import build_model

    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose(config_name="config", overrides=["encoder=lstm_attention"])
    assert cfg.pooler.name == "auto"
    model = build_model(cfg, vocab_size=50, pad_id=0, num_classes=2)
    ids = torch.randint(1, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.bool)
    model(ids, mask).sum().backward()
    assert model.encoder.attention.score.weight.grad.abs().sum() > 0
