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


# -- the carried state (``carries_state``, set by a language model) ---------------------

STATEFUL = ["lstm", "gru", "rnn", "scratch_lstm", "lstm_attention"]


def carried(name: str, **fields):
    """An encoder whose state is carried, as ``build_language_model`` makes it."""
    encoder = build(name, **fields)
    encoder.carries_state = True
    return encoder


def rows_of(state, index):
    """The rows ``index`` of every [layers, B, H] tensor of a state nest."""
    if isinstance(state, torch.Tensor):
        return state[:, index]
    return type(state)(rows_of(part, index) for part in state)


def leaves(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    return [leaf for part in state for leaf in leaves(part)]


def padded_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([8, 3, 1, 0, 3])
    return torch.randn(5, 8, 5), torch.arange(8)[None] < lengths[:, None], lengths


@pytest.mark.parametrize("given", [False, True], ids=["from-zeros", "from-a-given-state"])
@pytest.mark.parametrize("name", STATEFUL)
def test_a_carried_state_is_each_rows_state_at_its_last_real_token(name, given):
    """Every layer's state of every padded row equals the row's run alone; a zero-length row
    keeps its initial state (the given row, or zeros when none is given)."""
    torch.manual_seed(0)
    encoder = carried(name, num_layers=2).eval()
    x, mask, lengths = padded_batch()
    initial = None
    if given:
        initial = encoder(torch.randn(5, 2, 5), torch.ones(5, 2, dtype=torch.bool)).state
    with torch.no_grad():
        state = encoder(x, mask, initial).state
        for row, length in enumerate(lengths.tolist()):
            start = None if initial is None else rows_of(initial, [row])
            if length == 0:
                zeros = [torch.zeros_like(leaf) for leaf in leaves(rows_of(state, [row]))]
                expected = leaves(start) if given else zeros
            else:
                alone = encoder(x[row : row + 1, :length], mask[row : row + 1, :length], start)
                expected = leaves(alone.state)
            for got, want in zip(leaves(rows_of(state, [row])), expected, strict=True):
                torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "scratch_lstm"])
def test_the_padded_rows_run_again_with_the_same_dropped_weights(name):
    """weight_dropout: an LSTM's padded rows run again for their cell state, with the very
    W_hh the batch used (one draw per forward), not a second draw."""
    encoder = carried(name, weight_dropout=0.5).train()
    x, mask, lengths = padded_batch()
    torch.manual_seed(1)
    state = encoder(x, mask).state
    for row in (1, 2):
        length = int(lengths[row])
        torch.manual_seed(1)  # the same draw of the dropped weights
        alone = encoder(x[row : row + 1, :length], mask[row : row + 1, :length]).state
        for got, want in zip(leaves(rows_of(state, [row])), leaves(alone), strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", STATEFUL)
def test_carries_state_changes_no_output_and_nothing_without_padding(name):
    """The flag changes only the state of padded rows: sequence and final are bit-identical
    (a classifier, which never sets it, runs as before), and so is everything when no row
    is padded."""
    torch.manual_seed(0)
    plain = build(name, num_layers=2).eval()
    flagged = carried(name, num_layers=2).eval()
    flagged.load_state_dict(plain.state_dict())
    x, mask, _ = padded_batch()
    full = torch.ones_like(mask)
    for m in (mask, full):
        a, b = plain(x, m), flagged(x, m)
        assert torch.equal(a.sequence, b.sequence) and torch.equal(a.final, b.final)
    a, b = plain(x, full).state, flagged(x, full).state
    assert all(torch.equal(p, q) for p, q in zip(leaves(a), leaves(b), strict=True))


def test_a_language_model_sets_carries_state_and_a_classifier_does_not():
    from hydra import compose, initialize_config_module

    from pipeline.model.assembly import build_language_model, build_model

    with initialize_config_module(config_module="conf", version_base=None):
        lm = compose(config_name="config", overrides=["task=lm", "encoder.hidden_size=4"])
        classifier = compose(config_name="config", overrides=["encoder.hidden_size=4"])
    assert build_language_model(lm, 10, 0).encoder.carries_state is True
    assert build_model(classifier, 10, 0, 2).encoder.carries_state is False


def test_whether_a_batch_is_padded_is_read_on_the_cpu_only():
    """On a device the read would make each training step wait: there it is not made (a
    meta tensor, which cannot be read, stands in for a GPU one)."""
    from plugins.encoders.rnn import padded_on_host

    assert padded_on_host(torch.tensor([5, 3]), 5) and not padded_on_host(torch.tensor([5]), 5)
    assert not padded_on_host(torch.tensor([5, 3], device="meta"), 5)
