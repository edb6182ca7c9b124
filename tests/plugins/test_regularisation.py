"""AWD-LSTM regularisation options of the recurrent encoders and the embedding:
``encoder.weight_dropout``, ``encoder.locked_dropout``, ``embedding.dropout_kind`` and
``embedding.token_dropout``."""

import pytest
import torch

from pipeline import registry

LENGTHS = torch.tensor([6, 4, 6])


def encoder(name: str = "lstm", layout: str = "layers", **fields):
    torch.manual_seed(0)
    entry = registry.encoders.get(name)
    built = entry.cls(entry.config(name=name, hidden_size=6, **fields), 5)
    built.layout = layout
    return built


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(len(LENGTHS), 6, 5)
    return x, torch.arange(6)[None] < LENGTHS[:, None]


def recurrent_weights_used(model, x, mask) -> list[torch.Tensor]:
    """The W_hh each torch RNN of ``model`` is called with (a pre-hook reads them)."""
    used: list[torch.Tensor] = []
    rnns = [m for m in model.modules() if isinstance(m, torch.nn.RNNBase)]
    hooks = [
        rnn.register_forward_pre_hook(lambda m, args: used.append(m.weight_hh_l0.detach().clone()))
        for rnn in rnns
    ]
    model(x, mask)
    for hook in hooks:
        hook.remove()
    return used


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_weight_dropout_drops_recurrent_weights_in_training_only(name):
    model = encoder(name, num_layers=2, weight_dropout=0.5)
    raws = [directions[0].weight_hh_l0.detach().clone() for directions in model.layers]
    x, mask = batch()
    first = recurrent_weights_used(model.train(), x, mask)
    second = recurrent_weights_used(model, x, mask)
    for used, again, raw in zip(first, second, raws, strict=True):
        dropped = used == 0
        assert 0.2 < dropped.float().mean() < 0.8  # about half, one mask per matrix
        torch.testing.assert_close(used[~dropped], raw[~dropped] * 2)  # kept: scaled 1/(1-p)
        assert not torch.equal(used, again)  # a new mask at every forward pass
    for used, raw in zip(recurrent_weights_used(model.eval(), x, mask), raws, strict=True):
        assert torch.equal(used, raw)  # eval: the raw weights
    assert sorted(model.state_dict()) == sorted(encoder(name, num_layers=2).state_dict())


def test_weight_dropout_gradient_reaches_the_raw_weight_through_the_mask():
    model = encoder("lstm", weight_dropout=0.5).train()
    x, mask = batch()
    used = []
    rnn = model.layers[0][0]
    rnn.register_forward_pre_hook(lambda m, args: used.append(m.weight_hh_l0))
    model(x, mask).sequence.square().sum().backward()
    grad = rnn.weight_hh_l0.grad
    assert grad is not None and grad.abs().sum() > 0
    assert torch.all(grad[used[0] == 0] == 0)  # a dropped entry gets no gradient
    assert grad[used[0] != 0].abs().sum() > 0


@pytest.mark.parametrize("fields", [{}, {"num_layers": 2, "bidirectional": True}])
def test_weight_dropout_zero_is_bit_identical_and_eval_ignores_it(fields):
    x, mask = batch()
    plain, dropped = encoder(**fields), encoder(weight_dropout=0.3, **fields)
    torch.manual_seed(5)
    off = plain.train()(x, mask).sequence
    torch.manual_seed(5)
    assert torch.equal(encoder(weight_dropout=0.0, **fields).train()(x, mask).sequence, off)
    assert torch.equal(dropped.eval()(x, mask).sequence, plain.eval()(x, mask).sequence)
    assert not torch.equal(dropped.train()(x, mask).sequence, off)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_weight_dropout_in_the_fused_stack_draws_the_same_masks(name):
    """The fused multi-layer call (CUDA's layout, forced here) gets the same dropped W_hh."""
    layers = encoder(name, num_layers=2, weight_dropout=0.4).train()
    fused = encoder(name, "fused", num_layers=2, weight_dropout=0.4).train()
    x, mask = batch()
    torch.manual_seed(3)
    a = layers(x, mask).sequence
    torch.manual_seed(3)
    b = fused(x, mask).sequence
    torch.testing.assert_close(a, b)
    torch.manual_seed(3)
    fused.eval()
    assert not torch.allclose(fused(x, mask).sequence, b)


def test_weight_dropout_works_in_scratch_lstm():
    model = encoder("scratch_lstm", weight_dropout=0.5)
    x, mask = batch()
    eval_out = model.eval()(x, mask).sequence
    train_out = model.train()(x, mask).sequence
    assert not torch.allclose(train_out, eval_out)
    assert torch.equal(model.eval()(x, mask).sequence, eval_out)
