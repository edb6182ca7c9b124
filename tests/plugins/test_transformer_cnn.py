"""Non-recurrent encoders (``transformer``, ``cnn``): exactness under padding, empty rows,
gradients, determinism, config bounds and Hydra composition."""

import math

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module

import plugins.encoders.cnn  # noqa: F401  (registers "cnn" until plugins/__init__ does)
import plugins.encoders.transformer  # noqa: F401  (registers "transformer")
from pipeline import registry
from pipeline.errors import ConfigError
from plugins.encoders.transformer import sinusoids

INPUT_DIM = 6

TRANSFORMER_SHAPES = [
    dict(d_model=8, nhead=2, num_layers=2, dim_feedforward=16),  # projected input
    dict(d_model=INPUT_DIM, nhead=3, num_layers=1, dim_feedforward=12),  # identity input
    dict(d_model=8, nhead=2, num_layers=2, dim_feedforward=16, positions="learned"),
    dict(d_model=8, nhead=4, num_layers=2, dim_feedforward=16, norm_first=False),
]
CNN_SHAPES = [
    dict(widths=[3, 4, 5], channels=4),
    dict(widths=[2], channels=3),
    dict(widths=[1, 6], channels=2),  # a window wider than most rows
]
CASES = [("transformer", s) for s in TRANSFORMER_SHAPES] + [("cnn", s) for s in CNN_SHAPES]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def build(name: str, input_dim: int = INPUT_DIM, **fields):
    entry = registry.encoders.get(name)
    return entry.cls(entry.config(name=name, **fields), input_dim)


def expected_dim(name: str, fields: dict) -> int:
    if name == "cnn":
        return fields["channels"] * len(fields["widths"])
    return fields["d_model"]


def padded_batch(lengths: list[int], steps: int = 8, garbage: float = 1e4):
    """Random x with large random garbage at the padding steps, and its mask."""
    lengths_t = torch.tensor(lengths)
    mask = torch.arange(steps)[None] < lengths_t[:, None]
    x = torch.randn(len(lengths), steps, INPUT_DIM)
    x = torch.where(mask.unsqueeze(2), x, garbage * torch.randn_like(x))
    return x, mask


def weighted_sum(sequence: torch.Tensor) -> torch.Tensor:
    """A loss with non-degenerate gradients (see the transformer gradient test)."""
    weights = torch.randn(sequence.shape, generator=torch.Generator().manual_seed(1))
    return (sequence * weights).sum()


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("name, fields", CASES, ids=IDS)
def test_a_sequence_alone_equals_it_inside_a_padded_batch(name, fields, grad):
    torch.manual_seed(0)
    encoder = build(name, **fields).eval()
    dim = expected_dim(name, fields)
    assert encoder.output_dim == dim
    lengths = [8, 3, 1, 0]
    x, mask = padded_batch(lengths)
    with torch.set_grad_enabled(grad):  # no_grad takes torch's fused inference kernels
        batch = encoder(x, mask)
        assert batch.sequence.shape == (4, 8, dim)
        assert batch.final is None
        assert torch.isfinite(batch.sequence).all()
        assert batch.sequence[~mask].abs().sum() == 0  # padding steps (the empty row) are 0
        for row, length in enumerate(lengths):
            if length == 0:
                continue
            alone = encoder(x[row : row + 1, :length], mask[row : row + 1, :length])
            torch.testing.assert_close(
                alone.sequence[0], batch.sequence[row, :length], atol=1e-5, rtol=1e-5
            )


@pytest.mark.parametrize("name, fields", CASES, ids=IDS)
def test_non_finite_garbage_at_padding_does_not_leak(name, fields):
    torch.manual_seed(0)
    encoder = build(name, **fields).eval()
    x, mask = padded_batch([5, 2, 0])
    clean = encoder(x.masked_fill(~mask.unsqueeze(2), 0.0), mask).sequence
    for value in (float("inf"), float("nan")):
        dirty = encoder(x.masked_fill(~mask.unsqueeze(2), value), mask).sequence
        torch.testing.assert_close(dirty, clean, atol=0, rtol=0)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name, fields", CASES, ids=IDS)
def test_empty_rows_and_empty_batches_give_zeros(name, fields, train):
    encoder = build(name, **fields).train(train)
    x = torch.randn(3, 5, INPUT_DIM)
    mask = torch.zeros(3, 5, dtype=torch.bool)  # every row has length 0
    out = encoder(x, mask).sequence
    assert out.shape == (3, 5, encoder.output_dim)
    assert torch.isfinite(out).all() and out.abs().sum() == 0
    out.sum().backward()  # the backward pass is finite too
    for pname, p in encoder.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname
    nothing = encoder(torch.randn(2, 0, INPUT_DIM), torch.zeros(2, 0, dtype=torch.bool))
    assert nothing.sequence.shape == (2, 0, encoder.output_dim)


@pytest.mark.parametrize("name, fields", CASES, ids=IDS)
def test_eval_is_deterministic(name, fields):
    encoder = build(name, **fields, dropout=0.5).eval()
    x, mask = padded_batch([8, 4, 0])
    first = encoder(x, mask).sequence
    torch.testing.assert_close(encoder(x, mask).sequence, first, atol=0, rtol=0)
    with torch.no_grad():  # torch's fused inference kernels: same up to rounding
        again = encoder(x, mask).sequence
        torch.testing.assert_close(encoder(x, mask).sequence, again, atol=0, rtol=0)
    torch.testing.assert_close(again, first, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, fields", CASES, ids=IDS)
def test_every_parameter_receives_a_gradient(name, fields):
    torch.manual_seed(0)
    encoder = build(name, **fields, dropout=0.1)
    x, mask = padded_batch([8, 5, 2, 0])
    out = encoder(x, mask).sequence
    # For the transformer, sequence.sum() is degenerate: a LayerNorm ends the stack (the
    # final norm for pre-LN, each layer's norm2 for post-LN), and at init (weight all 1)
    # the features it outputs sum to sum(bias) whatever its input, so everything before it
    # gets a gradient of 0 up to rounding. A fixed random weighting is a real loss.
    loss = out.sum() if name == "cnn" else weighted_sum(out)
    loss.backward()
    for pname, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 1e-3, pname
        assert torch.isfinite(p.grad).all(), pname


def test_cnn_is_kim_convolution_with_same_length_output():
    """Each width is a plain convolution of the row padded (w-1)//2 left and w//2 right."""
    torch.manual_seed(0)
    encoder = build("cnn", widths=[2, 3], channels=4).eval()
    x = torch.randn(1, 7, INPUT_DIM)
    out = encoder(x, torch.ones(1, 7, dtype=torch.bool)).sequence
    assert out.shape == (1, 7, 8)
    for i, (w, conv) in enumerate(zip([2, 3], encoder.convs, strict=True)):
        padded = F.pad(x.transpose(1, 2), ((w - 1) // 2, w // 2))
        expected = torch.relu(F.conv1d(padded, conv.weight, conv.bias)).transpose(1, 2)
        torch.testing.assert_close(out[..., 4 * i : 4 * (i + 1)], expected)
    # with the max pooler this is max-over-time over the real tokens
    pooler_entry = registry.poolers.get("max")
    pooler = pooler_entry.cls(pooler_entry.config(name="max"), encoder.output_dim)
    x, mask = padded_batch([7, 3])
    output = encoder(x, mask)
    pooled = pooler(output, mask)
    torch.testing.assert_close(pooled[1], output.sequence[1, :3].max(dim=0).values)


def test_sinusoidal_positions():
    table = sinusoids(50, 7, torch.device("cpu"), torch.float32)
    assert table.shape == (50, 7)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1, 0, 1, 0, 1, 0]))
    torch.testing.assert_close(table[3, 0], torch.tensor(math.sin(3.0)))
    torch.testing.assert_close(table[3, 1], torch.tensor(math.cos(3.0)))


def test_transformer_positions_make_it_order_aware():
    torch.manual_seed(0)
    encoder = build("transformer", d_model=8, nhead=2, dim_feedforward=16).eval()
    x = torch.randn(1, 5, INPUT_DIM)
    mask = torch.ones(1, 5, dtype=torch.bool)
    out = encoder(x, mask).sequence
    flipped = encoder(x.flip(1), mask).sequence.flip(1)
    assert (out - flipped).abs().max() > 1e-3


def test_learned_positions_reject_too_long_sequences():
    encoder = build(
        "transformer", d_model=8, nhead=2, dim_feedforward=16, positions="learned", max_positions=6
    )
    encoder(torch.randn(2, 6, INPUT_DIM), torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(ConfigError, match=r"max_positions=6.*data\.max_length"):
        encoder(torch.randn(2, 7, INPUT_DIM), torch.ones(2, 7, dtype=torch.bool))


def config_from(name: str, **fields):
    return registry.encoders.config_from({"name": name, **fields})


@pytest.mark.parametrize(
    "name, fields, message",
    [
        ("transformer", dict(nhead=0), "encoder.nhead=0 is too small"),
        ("transformer", dict(num_layers=0), "encoder.num_layers=0 is too small"),
        ("transformer", dict(dropout=1.0), "encoder.dropout=1.0 is too large"),
        ("transformer", dict(positions="rotary"), "not a valid choice"),
        ("transformer", dict(max_positions=0), "encoder.max_positions=0 is too small"),
        ("transformer", dict(d_model=130, nhead=4), r"encoder\.d_model=130.*encoder\.nhead=4"),
        ("cnn", dict(channels=0), "encoder.channels=0 is too small"),
        ("cnn", dict(dropout=-0.1), "encoder.dropout=-0.1 is too small"),
        ("cnn", dict(widths=[]), "encoder.widths is empty"),
        ("cnn", dict(widths=[3, 0]), "invalid width 0"),
    ],
)
def test_bad_config_values_are_rejected(name, fields, message):
    with pytest.raises(ConfigError, match=message):
        config_from(name, **fields)


def test_hydra_composes_both_encoders():
    from pipeline.model.assembly import build_model

    with initialize_config_module(config_module="conf", version_base=None):
        cnn_cfg = compose(config_name="config", overrides=["encoder=cnn", "encoder.widths=[2,3]"])
        tf_cfg = compose(
            config_name="config",
            overrides=[
                "encoder=transformer",
                "encoder.d_model=16",
                "encoder.positions=learned",
                "encoder.norm_first=false",
            ],
        )
    cnn = registry.encoders.config_from(cnn_cfg.encoder)
    assert type(cnn).__name__ == "CNNConfig"
    assert cnn.widths == [2, 3] and cnn.channels == 100
    tf = registry.encoders.config_from(tf_cfg.encoder)
    assert type(tf).__name__ == "TransformerConfig"
    assert (tf.d_model, tf.positions, tf.norm_first, tf.nhead) == (16, "learned", False, 4)
    for cfg in (cnn_cfg, tf_cfg):
        model = build_model(cfg, vocab_size=50, pad_id=0, num_classes=3)
        ids = torch.randint(1, 50, (2, 7))
        mask = torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
        logits = model(ids, mask)
        assert logits.shape == (2, 3)
        logits.sum().backward()


def test_the_transformer_summary_is_the_mean_over_real_tokens():
    """pooler=auto takes the transformer's own summary: the mean of the real steps, exact
    under padding (garbage there changes nothing) and zero for an empty row."""
    torch.manual_seed(0)
    encoder = build("transformer", d_model=INPUT_DIM, nhead=2, dim_feedforward=16).eval()
    x, mask = padded_batch([5, 3, 0])
    with torch.no_grad():
        out = encoder(x, mask)
        again = encoder(torch.where(mask.unsqueeze(2), x, torch.zeros_like(x)), mask)
    for row, length in enumerate([5, 3]):
        mean = out.sequence[row, :length].mean(dim=0)
        torch.testing.assert_close(out.pooled[row], mean, rtol=1e-5, atol=1e-6)
    assert torch.all(out.pooled[2] == 0)
    torch.testing.assert_close(out.pooled, again.pooled)
