"""scratch_lstm: the LSTM from its gate equations, checked against torch's nn.LSTM."""

import pickle

import pytest
import torch

import plugins.encoders.scratch_lstm  # noqa: F401  (registers it until plugins/__init__ does)
from pipeline import registry
from pipeline.testing import check_encoder
from plugins.encoders.rnn import RNNConfig
from plugins.encoders.scratch_lstm import ScratchLSTMConfig, ScratchLSTMLayer

SHAPES = [
    dict(num_layers=1, bidirectional=False),
    dict(num_layers=2, bidirectional=False),
    dict(num_layers=1, bidirectional=True),
    dict(num_layers=2, bidirectional=True),
]
SHAPE_IDS = [f"L{s['num_layers']}-bi{s['bidirectional']}" for s in SHAPES]
LENGTHS = [8, 3, 1, 0]
HIDDEN = 7


def build(name: str, input_dim: int = 5, **fields):
    entry = registry.encoders.get(name)
    return entry.cls(entry.config(name=name, hidden_size=HIDDEN, **fields), input_dim)


def padded_batch(dtype=torch.float32):
    lengths = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), max(LENGTHS), 5, dtype=dtype)
    mask = torch.arange(max(LENGTHS))[None] < lengths[:, None]
    return x, mask, lengths


def forward_backward(encoder, x, mask, weights):
    """Outputs, final states and gradients (input's and every parameter's) of a loss that
    weighs every output differently, so that no gradient is a plain sum."""
    x = x.clone().requires_grad_(True)
    out = encoder(x, mask)
    h_n, c_n = out.state[-1][0]
    loss = (out.sequence * weights[0]).sum() + (out.final * weights[1]).sum()
    loss = loss + (h_n * weights[2]).sum() + (c_n * weights[3]).sum()
    loss.backward()
    states = [t for layer in out.state for direction in layer for t in direction]
    grads = {name: p.grad for name, p in encoder.named_parameters()}
    return out, states, x.grad, grads


def test_registered_with_its_config():
    entry = registry.encoders.get("scratch_lstm")
    assert entry.config is ScratchLSTMConfig and issubclass(ScratchLSTMConfig, RNNConfig)
    config = registry.encoders.config_from(
        {"name": "scratch_lstm", "hidden_size": 4, "peepholes": True, "forget_bias": 1.0}
    )
    assert config.peepholes and config.forget_bias == 1.0 and not config.layer_norm
    fields = ScratchLSTMConfig.__dataclass_fields__
    for name in ("peepholes", "forget_bias", "layer_norm"):
        assert fields[name].metadata["help"], name


@pytest.mark.parametrize(
    "extras",
    [
        dict(num_layers=1, bidirectional=False),
        dict(num_layers=2, bidirectional=True, dropout=0.3, peepholes=True, layer_norm=True),
        dict(num_layers=2, bidirectional=False, peepholes=True, layer_norm=True),
    ],
    ids=["plain", "peepholes-layer_norm", "stacked-peepholes-layer_norm"],
)
def test_passes_the_encoder_kit(extras):
    report = check_encoder("scratch_lstm", hidden_size=5, forget_bias=1.0, **extras)
    report.assert_ok()
    assert ("state" in report.passed) == (not extras["bidirectional"])


def test_initialised_like_nn_lstm():
    """Same seed, same weights: the parameters are drawn in nn.LSTM's order and range."""
    torch.manual_seed(0)
    lstm = build("lstm", num_layers=2, bidirectional=True)
    torch.manual_seed(0)
    scratch = build("scratch_lstm", num_layers=2, bidirectional=True)
    expected, got = lstm.state_dict(), scratch.state_dict()
    assert list(got) == list(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


@pytest.mark.parametrize(
    "dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)], ids=["float32", "float64"]
)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_matches_lstm_with_its_weights(shape, dtype, tol):
    torch.manual_seed(0)
    lstm = build("lstm", **shape).to(dtype)
    scratch = build("scratch_lstm", **shape).to(dtype)
    scratch.load_state_dict(lstm.state_dict())  # strict: same names and shapes
    x, mask, _ = padded_batch(dtype)
    directions = 2 if shape["bidirectional"] else 1
    weights = [
        torch.randn(4, 8, HIDDEN * directions, dtype=dtype),
        torch.randn(4, HIDDEN * directions, dtype=dtype),
        torch.randn(1, 4, HIDDEN, dtype=dtype),
        torch.randn(1, 4, HIDDEN, dtype=dtype),
    ]
    want, want_states, want_dx, want_grads = forward_backward(lstm, x, mask, weights)
    got, got_states, got_dx, got_grads = forward_backward(scratch, x, mask, weights)

    def close(actual, expected, what):
        torch.testing.assert_close(actual, expected, atol=tol, rtol=tol, msg=what)

    close(got.sequence, want.sequence, "sequence")
    close(got.final, want.final, "final")
    for i, (a, b) in enumerate(zip(got_states, want_states, strict=True)):
        close(a, b, f"state {i}")
    close(got_dx, want_dx, "input gradient")
    assert list(got_grads) == list(want_grads)
    for name in want_grads:
        close(got_grads[name], want_grads[name], f"gradient of {name}")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_peepholes_and_layer_norm_exact_under_padding(bidirectional):
    torch.manual_seed(0)
    encoder = build(
        "scratch_lstm",
        num_layers=2,
        bidirectional=bidirectional,
        peepholes=True,
        layer_norm=True,
        forget_bias=1.0,
    ).eval()
    x, mask, lengths = padded_batch()
    x[~mask] = 1e3  # whatever the padding holds changes nothing
    batch = encoder(x, mask)
    for row, length in enumerate(lengths.tolist()):
        if length == 0:
            continue
        alone = encoder(x[row : row + 1, :length], mask[row : row + 1, :length])
        torch.testing.assert_close(
            alone.sequence[0], batch.sequence[row, :length], atol=1e-6, rtol=1e-5
        )
        torch.testing.assert_close(alone.final[0], batch.final[row], atol=1e-6, rtol=1e-5)
    assert batch.sequence[~mask].abs().sum() == 0
    assert batch.final[lengths == 0].abs().sum() == 0  # the zero-length row


def test_peepholes_and_layer_norm_every_parameter_learns_and_no_nan():
    torch.manual_seed(0)
    encoder = build(
        "scratch_lstm",
        num_layers=2,
        bidirectional=True,
        dropout=0.1,
        peepholes=True,
        layer_norm=True,
    )
    x, mask, _ = padded_batch()
    x[3] = 0.0  # the zero-length row: all-zero inputs, so layer norm sees zero variance
    out = encoder(x, mask)
    (out.sequence.sum() + out.final.sum()).backward()
    assert torch.isfinite(out.sequence).all() and torch.isfinite(out.final).all()
    assert out.sequence[3].abs().sum() == 0 and out.final[3].abs().sum() == 0
    names = {name for name, _ in encoder.named_parameters()}
    for part in ("weight_ci", "weight_cf", "weight_co", "norm_ih.weight", "norm_c.bias"):
        assert f"layers.1.1.{part}" in names, part
    for name, p in encoder.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_extra_parameters_exist_only_when_enabled():
    plain = {name for name, _ in ScratchLSTMLayer(5, 3).named_parameters()}
    assert plain == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
    peep = {name for name, _ in ScratchLSTMLayer(5, 3, peepholes=True).named_parameters()}
    assert peep - plain == {"weight_ci", "weight_cf", "weight_co"}
    normed = {name for name, _ in ScratchLSTMLayer(5, 3, layer_norm=True).named_parameters()}
    assert normed - plain == {"norm_ih.weight", "norm_hh.weight", "norm_c.weight", "norm_c.bias"}


def test_forget_bias_sets_the_forget_gate_slice_of_the_bias():
    torch.manual_seed(0)
    base = build("scratch_lstm", num_layers=2, bidirectional=True)
    torch.manual_seed(0)
    shifted = build("scratch_lstm", num_layers=2, bidirectional=True, forget_bias=1.0)
    for directions_a, directions_b in zip(base.layers, shifted.layers, strict=True):
        for a, b in zip(directions_a, directions_b, strict=True):
            delta = b.bias_ih_l0 - a.bias_ih_l0  # gate order i, f, g, o
            expected = torch.zeros(4 * HIDDEN)
            expected[HIDDEN : 2 * HIDDEN] = 1.0
            torch.testing.assert_close(delta, expected)
            assert torch.equal(a.bias_hh_l0, b.bias_hh_l0)
            assert torch.equal(a.weight_ih_l0, b.weight_ih_l0)


@pytest.mark.parametrize("extras", [{}, {"peepholes": True, "layer_norm": True}], ids=str)
def test_state_carried_across_halves_equals_the_whole(extras):
    torch.manual_seed(0)
    encoder = build("scratch_lstm", num_layers=2, **extras).eval()
    x = torch.randn(3, 10, 5)
    mask = torch.ones(3, 10, dtype=torch.bool)
    whole = encoder(x, mask)
    first = encoder(x[:, :6], mask[:, :6])
    second = encoder(x[:, 6:], mask[:, 6:], state=first.state)
    torch.testing.assert_close(torch.cat([first.sequence, second.sequence], dim=1), whole.sequence)
    torch.testing.assert_close(second.final, whole.final)
    for layer_a, layer_b in zip(second.state, whole.state, strict=True):
        for (h_a, c_a), (h_b, c_b) in zip(layer_a, layer_b, strict=True):
            assert h_a.shape == (1, 3, HIDDEN) and c_a.shape == (1, 3, HIDDEN)
            torch.testing.assert_close(h_a, h_b)
            torch.testing.assert_close(c_a, c_b)


def test_pickles_like_the_model_logger_needs():
    """MLflow logs models with pickle: the encoder must round-trip."""
    torch.manual_seed(0)
    encoder = build("scratch_lstm", bidirectional=True, peepholes=True, layer_norm=True).eval()
    copy = pickle.loads(pickle.dumps(encoder))
    x, mask, _ = padded_batch()
    torch.testing.assert_close(copy(x, mask).sequence, encoder(x, mask).sequence)


def reference_lstm(layer, x, h, c):
    """The equations one gate at a time, for one row, with layer norm written out."""

    def norm(v, gain=None, shift=None, eps=layer.eps):
        v = (v - v.mean()) / torch.sqrt(v.var(unbiased=False) + eps)
        return v * (1 if gain is None else gain) + (0 if shift is None else shift)

    H = layer.hidden_size
    gate = {name: slice(k * H, (k + 1) * H) for k, name in enumerate("ifgo")}
    peep = layer.weight_ci is not None
    ln = layer.norm_c is not None
    outputs = []
    for x_t in x:
        pre = {}
        for name, s in gate.items():
            wx = layer.weight_ih_l0[s] @ x_t
            wh = layer.weight_hh_l0[s] @ h
            if ln:
                wx = norm(wx, layer.norm_ih.weight[s])
                wh = norm(wh, layer.norm_hh.weight[s])
            pre[name] = wx + wh + layer.bias_ih_l0[s] + layer.bias_hh_l0[s]
        i = torch.sigmoid(pre["i"] + (layer.weight_ci * c if peep else 0))
        f = torch.sigmoid(pre["f"] + (layer.weight_cf * c if peep else 0))
        g = torch.tanh(pre["g"])
        c = f * c + i * g
        o = torch.sigmoid(pre["o"] + (layer.weight_co * c if peep else 0))
        cell = norm(c, layer.norm_c.weight, layer.norm_c.bias) if ln else c
        h = o * torch.tanh(cell)
        outputs.append(h)
    return torch.stack(outputs), h, c


@pytest.mark.parametrize(
    "extras",
    [{}, {"peepholes": True}, {"layer_norm": True}, {"peepholes": True, "layer_norm": True}],
    ids=str,
)
def test_layer_follows_the_written_out_equations(extras):
    torch.manual_seed(0)
    layer = ScratchLSTMLayer(5, 4, forget_bias=1.0, **extras).double()
    with torch.no_grad():  # non-trivial gains and shifts, so mixing them up shows
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64)
    c0 = torch.randn(1, 2, 4, dtype=torch.float64)
    out, (h_n, c_n) = layer(x, (h0, c0))
    assert out.shape == (2, 6, 4) and h_n.shape == (1, 2, 4) and c_n.shape == (1, 2, 4)
    for row in range(2):
        want, want_h, want_c = reference_lstm(layer, x[row], h0[0, row], c0[0, row])
        torch.testing.assert_close(out[row], want)
        torch.testing.assert_close(h_n[0, row], want_h)
        torch.testing.assert_close(c_n[0, row], want_c)
