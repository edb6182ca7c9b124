"""AWD-LSTM regularisation options of the recurrent encoders and the embedding:
``encoder.weight_dropout``, ``encoder.locked_dropout``, ``embedding.dropout_kind`` and
``embedding.token_dropout``."""

import pytest
import torch

from pipeline import registry
from plugins.dropout import Dropout

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


def assert_locked(out: torch.Tensor, reference: torch.Tensor) -> None:
    """Every time step of a sequence has the same zeroed features; sequences differ."""
    zeroed = (out == 0) & (reference != 0)  # [B, T, D]
    assert zeroed.any() and not zeroed.all()
    assert torch.equal(zeroed, zeroed[:, :1].expand_as(zeroed))  # one mask across time
    assert not all(torch.equal(zeroed[0], zeroed[b]) for b in range(1, len(zeroed)))


def test_locked_dropout_on_the_output_uses_one_mask_across_time():
    x = torch.randn(8, 6, 5)
    mask = torch.ones(8, 6, dtype=torch.bool)
    model = encoder(locked_dropout=0.5)
    reference = model.eval()(x, mask).sequence
    torch.manual_seed(2)
    out = model.train()(x, mask).sequence
    assert_locked(out, reference)
    kept = out != 0
    torch.testing.assert_close(out[kept], reference[kept] * 2)
    assert torch.equal(model.eval()(x, mask).sequence, reference)  # off in eval


def test_locked_dropout_between_layers_is_locked_and_zero_is_bit_identical():
    x, mask = batch()
    model = encoder(num_layers=2, locked_dropout=0.5).train()
    seen = []
    model.layers[1][0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.locked_dropout.p = 0.0
    reference = model(x, mask).sequence  # p 0: the identity
    first_layer_out = seen[-1]
    model.locked_dropout.p = 0.5
    model(x, mask)
    assert_locked(seen[-1], first_layer_out)
    torch.manual_seed(4)
    off = encoder(num_layers=2).train()(x, mask).sequence
    assert torch.equal(off, reference)
    # a stack with locked dropout runs layer by layer in the fused layout too
    fused = encoder(num_layers=2, layout="fused", locked_dropout=0.5).train()
    torch.manual_seed(6)
    a = fused(x, mask).sequence
    torch.manual_seed(6)
    torch.testing.assert_close(a, model(x, mask).sequence)


def embedding(**fields):
    torch.manual_seed(0)
    entry = registry.embeddings.get("learned")
    return entry.cls(entry.config(name="learned", dim=16, **fields), 50, 0)


def test_embedding_locked_dropout_and_the_element_default_unchanged():
    ids = torch.randint(1, 50, (8, 10))
    plain = embedding(dropout=0.5).train()
    torch.manual_seed(7)
    element = plain(ids)
    torch.manual_seed(7)
    expected = Dropout(0.5).train()(plain.table(ids))
    assert torch.equal(element, expected)  # the default: element-wise
    reference = plain.table(ids).detach()
    locked = embedding(dropout=0.5, dropout_kind="locked").train()(ids)
    assert_locked(locked, reference)
    assert torch.equal(embedding(dropout=0.5, dropout_kind="locked").eval()(ids), reference)


def test_embedding_token_dropout_drops_whole_tokens():
    ids = torch.randint(1, 50, (8, 10))
    model = embedding(dropout=0.0, token_dropout=0.5).train()
    reference = model.table(ids).detach()
    out = model(ids)
    dropped = (out == 0).all(dim=2)  # [B, T]: a dropped token is a zero vector
    assert 0.2 < dropped.float().mean() < 0.8
    kept = ~dropped
    torch.testing.assert_close(out[kept], reference[kept] * 2)
    same_id = ids[0, 0]
    ids[:, :] = same_id  # one vocabulary id everywhere: each occurrence has its own mask
    again = model(ids)
    rows = (again == 0).all(dim=2)
    assert rows.any() and not rows.all()
    assert torch.equal(model.eval()(ids), model.table(ids))  # off in eval
    torch.manual_seed(8)
    a = embedding(dropout=0.25).train()(ids)
    torch.manual_seed(8)
    assert torch.equal(embedding(dropout=0.25, token_dropout=0.0).train()(ids), a)


@pytest.mark.parametrize("p", [0.25, 0.3, 0.5])
def test_cheap_dropout_is_element_wise_and_keeps_the_expected_value(p):
    torch.manual_seed(3)
    x = torch.ones(32, 50, 64, requires_grad=True)
    out = Dropout(p).train()(x)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - p) < 0.01  # each value its own draw...
    assert dropped[:, :, 0].any(dim=1).all() and not dropped.all(dim=2).any()  # ... not per token
    assert not torch.equal(dropped[:, 0], dropped[:, 1])  # ... nor one mask across time
    scale = out[~dropped].unique()
    assert scale.numel() == 1 and abs(scale.item() * (1 - p) - 1) < 1e-4
    assert abs(out.mean().item() - 1) < 0.02  # kept values are scaled up: same mean
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # gradient through the same mask and scale


def test_cheap_dropout_is_off_in_eval_and_at_zero_and_seeded():
    x = torch.randn(4, 7, 5)
    assert Dropout(0.5).eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    torch.manual_seed(5)
    first = Dropout(0.4).train()(x)
    torch.manual_seed(5)
    assert torch.equal(Dropout(0.4).train()(x), first)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)
