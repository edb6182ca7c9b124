"""``Encoder.trace``: the recurrent encoders' gates, cells and hidden states, recomputed from
their weights, reproduce the encoders' own outputs (issue 20)."""

from __future__ import annotations

import pytest
import torch

from pipeline import registry
from pipeline.contracts import Encoder
from pipeline.testing.tensors import LENGTHS, mask_of

SHAPES = [
    dict(num_layers=1, bidirectional=False),
    dict(num_layers=2, bidirectional=False),
    dict(num_layers=1, bidirectional=True),
    dict(num_layers=2, bidirectional=True),
]
NAMES = {
    "lstm": (
        {"input", "forget", "candidate", "output", "cell", "hidden"},
        {"input", "forget", "output"},
    ),
    "scratch_lstm": (
        {"input", "forget", "candidate", "output", "cell", "hidden"},
        {"input", "forget", "output"},
    ),
    "gru": ({"reset", "update", "candidate", "hidden"}, {"reset", "update"}),
    "rnn": ({"preactivation", "hidden"}, set()),
}
#: scratch_lstm's options change its equations: each is traced too.
SCRATCH_OPTIONS = [
    dict(),
    dict(peepholes=True, forget_bias=1.0),
    dict(layer_norm=True, peepholes=True),
]


def build(name: str, input_dim: int = 5, **fields) -> Encoder:
    entry = registry.encoders.get(name)
    return entry.cls(entry.config(name=name, hidden_size=6, **fields), input_dim)


def check_trace_reproduces_the_output(encoder: Encoder, name: str) -> None:
    """Per layer and direction, the named quantities, [B, T, H], 0 at padding; the top
    layer's ``hidden`` is its direction's half of ``sequence`` at real tokens."""
    torch.manual_seed(1)
    encoder.eval()
    lengths = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), max(LENGTHS), encoder.input_dim)
    mask = mask_of(lengths, x.size(1))
    sequence = encoder(x, mask).sequence
    traces = encoder.trace(x, mask)
    layers, directions = encoder.config.num_layers, 2 if encoder.config.bidirectional else 1
    assert [(t.layer, t.direction) for t in traces] == [
        (layer, direction) for layer in range(layers) for direction in range(directions)
    ]
    quantities, gates = NAMES[name]
    hidden = encoder.config.hidden_size
    for trace in traces:
        assert set(trace.quantities) == quantities and set(trace.gates) == gates
        for value in trace.quantities.values():
            assert value.shape == (len(LENGTHS), max(LENGTHS), hidden)
            assert value[~mask].abs().sum() == 0  # padding is 0
        for gate in trace.gates:
            real = trace.quantities[gate][mask]
            assert ((real > 0) & (real < 1)).all()
    for trace in traces[-directions:]:
        half = sequence[..., trace.direction * hidden : (trace.direction + 1) * hidden]
        torch.testing.assert_close(trace.quantities["hidden"][mask], half[mask], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "shape", SHAPES, ids=lambda s: f"L{s['num_layers']}-bi{s['bidirectional']}"
)
@pytest.mark.parametrize("name", ["lstm", "gru", "rnn", "scratch_lstm"])
def test_the_recomputed_hidden_state_is_the_encoders_output(name, shape):
    encoder = build(name, **shape)
    assert encoder.traceable
    check_trace_reproduces_the_output(encoder, name)


@pytest.mark.parametrize("options", SCRATCH_OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_scratch_lstm_is_traced_with_its_options(options):
    encoder = build("scratch_lstm", num_layers=2, bidirectional=True, **options)
    check_trace_reproduces_the_output(encoder, "scratch_lstm")


def test_the_lower_layer_of_a_stack_is_what_the_upper_one_reads():
    """Layer 0's traced hidden states, fed to layer 1's own torch RNN, give layer 1's output."""
    encoder = build("lstm", num_layers=2).eval()
    lengths = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), max(LENGTHS), 5)
    mask = mask_of(lengths, x.size(1))
    bottom, top = encoder.trace(x, mask)
    with torch.no_grad():
        expected, _ = encoder.layers[1][0](bottom.quantities["hidden"])
    torch.testing.assert_close(top.quantities["hidden"][mask], expected[mask], atol=1e-5, rtol=0)


def test_an_encoder_without_a_trace_says_which_it_is():
    encoder = build_plain("cnn")
    assert not encoder.traceable
    with pytest.raises(NotImplementedError, match="CNNEncoder"):
        encoder.trace(torch.randn(1, 3, 5), torch.ones(1, 3, dtype=torch.bool))


def build_plain(name: str) -> Encoder:
    entry = registry.encoders.get(name)
    return entry.cls(entry.config(name=name), 5)
