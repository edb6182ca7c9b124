"""The recurrent encoders' fused (cuDNN-friendly) layout, forced on the CPU: the same
function, the same parameters and state dict as the per-layer layout (see
``plugins.encoders.layout``)."""

import itertools

import pytest
import torch

from pipeline import registry
from pipeline.runtime.state import detach_state
from pipeline.testing import check_encoder
from plugins.encoders.configs import RNNConfig
from plugins.encoders.rnn import ElmanEncoder, GRUEncoder, LSTMEncoder

CASES = list(itertools.product(["lstm", "gru", "rnn"], [1, 2], [False, True]))
LENGTHS = torch.tensor([8, 3, 1, 0, 5])


def build(name: str, layout: str, **fields):
    entry = registry.encoders.get(name)
    encoder = entry.cls(entry.config(name=name, hidden_size=7, **fields), 5)
    encoder.layout = layout
    return encoder


def pair(name: str, **fields):
    """A per-layer encoder and a fused one with the same weights."""
    torch.manual_seed(0)
    layers = build(name, "layers", **fields)
    fused = build(name, "fused", **fields)
    fused.load_state_dict(layers.state_dict())
    return layers, fused


def batch(width: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(len(LENGTHS), width, 5)
    mask = torch.arange(width)[None] < LENGTHS[:, None]
    x[~mask] = 100.0  # padding must not reach a real token in either layout
    return x, mask


def state_tensors(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for item in state for t in state_tensors(item)]


def run(encoder, x, mask, state=None):
    """Outputs, states, and the gradients of a loss over them (input and parameters)."""
    x = x.clone().requires_grad_()
    out = encoder(x, mask, state)
    states = state_tensors(out.state)
    weights = torch.linspace(-1, 1, out.sequence.size(2), device=x.device)
    loss = (out.sequence * weights).square().sum()
    loss = loss + out.final.sum() + sum(s.sum() for s in states)
    encoder.zero_grad()
    loss.backward()
    grads = [x.grad] + [p.grad for p in encoder.parameters()]
    return [out.sequence, out.final, *states, *grads], detach_state(out.state)


def hooked(encoder) -> list[int]:
    """Counts the calls of the per-layer modules."""
    calls: list[int] = []
    for directions in encoder.layers:
        for rnn in directions:
            rnn.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("name, num_layers, bidirectional", CASES)
def test_fused_layout_equals_the_per_layer_one_on_padded_batches(name, num_layers, bidirectional):
    layers, fused = pair(name, num_layers=num_layers, bidirectional=bidirectional)
    x, mask = batch()
    expected, state = run(layers, x, mask)
    got, fused_state = run(fused, x, mask)
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)
    if not bidirectional:  # carried state (stateful LMs): the next window goes on the same
        x2, mask2 = batch(width=4)
        expected, _ = run(layers, x2, mask2, state)
        got, _ = run(fused, x2, mask2, fused_state)
        for a, b in zip(expected, got, strict=True):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_a_fused_unidirectional_stack_is_one_multi_layer_call(name):
    _, fused = pair(name, num_layers=2)
    calls = hooked(fused)
    fused(*batch())
    assert calls == []  # the per-layer modules were not called: one multi-layer kernel was


def test_the_cpu_keeps_the_per_layer_layout_by_default():
    torch.manual_seed(0)
    encoder = build("lstm", "auto", num_layers=2)
    calls = hooked(encoder)
    encoder(*batch())
    assert len(calls) == 2


def test_deterministic_algorithms_keep_torch_dropout_between_stacked_layers():
    _, fused = pair("lstm", num_layers=2, dropout=0.5)
    calls = hooked(fused)
    torch.use_deterministic_algorithms(True)
    try:
        fused(*batch())
    finally:
        torch.use_deterministic_algorithms(False)
    assert len(calls) == 2  # layer by layer, dropout from torch's (checkpointed) generator
    fused(*batch())
    assert len(calls) == 2  # otherwise the stack's own dropout, in one call


@pytest.mark.parametrize("bidirectional", [False, True])
def test_state_dicts_move_between_the_layouts_both_ways(bidirectional):
    for source_layout, target_layout in [("fused", "layers"), ("layers", "fused")]:
        torch.manual_seed(0)
        source = build("lstm", source_layout, num_layers=2, bidirectional=bidirectional)
        optimizer = torch.optim.SGD(source.parameters(), lr=0.5)
        for _ in range(3):  # train a little in the source layout
            optimizer.zero_grad()
            source(*batch()).sequence.sum().backward()
            optimizer.step()
        target = build("lstm", target_layout, num_layers=2, bidirectional=bidirectional)
        assert target.state_dict().keys() == source.state_dict().keys()
        target.load_state_dict(source.state_dict())
        torch.testing.assert_close(
            target.eval()(*batch()).sequence, source.eval()(*batch()).sequence
        )


def test_fused_stack_trains_with_dropout_and_every_parameter_learns():
    _, fused = pair("gru", num_layers=2, dropout=0.5)
    x, mask = batch()
    out = fused.train()(x, mask)
    (out.sequence.sum() + out.final.sum()).backward()
    for pname, p in fused.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    assert not torch.equal(out.sequence, fused.eval()(x, mask).sequence)  # dropout was on


@pytest.mark.parametrize("cls", [LSTMEncoder, GRUEncoder, ElmanEncoder])
@pytest.mark.parametrize("num_layers, bidirectional", [(2, False), (2, True)])
def test_the_fused_layout_passes_the_encoder_kit(cls, num_layers, bidirectional):
    fused_cls = type(f"Fused{cls.__name__}", (cls,), {"layout": "fused"})
    config = RNNConfig(name="fused", hidden_size=5, num_layers=num_layers)
    config.bidirectional = bidirectional
    report = check_encoder(fused_cls, config)
    report.assert_ok()
    assert ("state" in report.passed) == (not bidirectional)
