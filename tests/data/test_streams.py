"""Language-model streams: no token lost or repeated, state carried and detached, and
perplexity over exactly the split's tokens."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pipeline.config.schemas import OptimizerConfig, TrainerConfig
from pipeline.data.streams import make_streams, num_windows, windows
from pipeline.runtime.state import detach_state


def targets_in_reading_order(ids: torch.Tensor, batch_size: int, bptt: int) -> list[int]:
    """Every real target, stream by stream, window by window, as training reads them."""
    streams = make_streams(ids, batch_size, pad_id=-1)
    per_stream: list[list[int]] = [[] for _ in range(streams.inputs.size(0))]
    for window in windows(streams, bptt, torch.device("cpu")):
        for row in range(window.targets.size(0)):
            per_stream[row] += window.targets[row][window.mask[row]].tolist()
    return [t for stream in per_stream for t in stream]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 300), batch_size=st.integers(1, 40), bptt=st.integers(1, 50))
def test_every_token_but_the_first_is_a_target_exactly_once(n, batch_size, bptt):
    ids = torch.arange(n) + 100  # distinct ids: a loss or repeat would show
    assert targets_in_reading_order(ids, batch_size, bptt) == list(range(101, 100 + n))


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 300), batch_size=st.integers(1, 40))
def test_each_input_is_the_token_before_its_target(n, batch_size):
    ids = torch.randint(0, 7, (n,))
    s = make_streams(ids, batch_size, pad_id=-1)
    assert s.num_targets == n - 1
    flat_in, flat_out = s.inputs[s.mask], s.targets[s.mask]
    assert torch.equal(flat_in, ids[:-1]) and torch.equal(flat_out, ids[1:])
    assert (s.inputs[~s.mask] == -1).all()
    assert s.mask.any(dim=1).all()  # no stream is all padding


def test_padding_sits_at_the_end_of_the_last_stream_only():
    s = make_streams(torch.arange(11), batch_size=4, pad_id=0)  # 10 targets, L = 3
    assert s.inputs.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 0]]
    assert s.targets.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 0, 0]]
    assert num_windows(s, 2) == 2


def test_too_short_a_stream_is_an_error():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        make_streams(torch.tensor([5]), 4, 0)


def test_detach_state_cuts_the_graph_in_nested_states():
    x = torch.ones(2, requires_grad=True)
    state = [[(x * 2, x * 3)], {"h": x + 1}]
    cut = detach_state(state)
    assert not cut[0][0][0].requires_grad and not cut[1]["h"].requires_grad
    assert torch.equal(cut[0][0][1], x * 3)


# -- the training loop carries state across windows and detaches it ----------------------


class Recorder(nn.Module):
    """A tiny LM whose encoder records the state it is given (a running token count)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 4)
        self.out = nn.Linear(4, vocab)
        self.seen: list[torch.Tensor | None] = []

    def forward(self, ids, mask, state=None):
        self.seen.append(None if state is None else state)
        count = torch.zeros(ids.size(0)) if state is None else state
        count = count + mask.sum(1)
        h = self.embed(ids) + count[:, None, None] * 0.0  # state enters the graph
        return self.out(h), count + 0 * h.sum((1, 2))


def train_lm(model, ids, trainer, optimizer, checkpoint_dir):
    """The one ``fit``, in this process, on the language-model task over ``ids`` (train and
    validation alike)."""
    from pipeline.tasks.language_model import LanguageModelTask
    from pipeline.training.context import local_context
    from pipeline.training.loop import fit

    ctx = local_context(trainer, optimizer, checkpoint_dir=checkpoint_dir)
    task = LanguageModelTask.from_ids(ctx, {"train": ids, "validation": ids})
    return fit(task, model, ctx)


def test_fit_carries_the_state_across_windows_and_detaches_it(tmp_path):

    model = Recorder(vocab=10)
    ids = torch.randint(1, 10, (101,))  # 100 targets: 4 streams of 25, windows of 10
    trainer = TrainerConfig(
        batch_size=4,
        eval_batch_size=4,
        bptt=10,
        max_epochs=1,
        progress="none",
        monitor="val/perplexity",
        monitor_mode="min",
    )
    train_lm(model, ids, trainer, OptimizerConfig(name="sgd", lr=0.1, weight_decay=0.0), tmp_path)
    train = model.seen[:3]  # 3 training windows, then 3 validation windows
    assert train[0] is None
    assert train[1].tolist() == [10, 10, 10, 10] and train[2].tolist() == [20, 20, 20, 20]
    assert all(not s.requires_grad for s in train[1:])  # detached between windows
    assert model.seen[3] is None  # validation starts from a fresh state
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()


def test_perplexity_is_over_exactly_the_tokens_of_the_split():
    from pipeline.tasks.lm_eval import evaluate_lm

    class Uniform(nn.Module):
        """Every next token equally likely: perplexity = vocabulary size, exactly."""

        def forward(self, ids, mask, state=None):
            return torch.zeros(*ids.shape, 13), state

    ids = torch.randint(0, 13, (1001,))
    result = evaluate_lm(Uniform(), ids, batch_size=7, bptt=9, pad_id=0, device=torch.device("cpu"))
    assert result.tokens == 1000
    assert math.isclose(result.perplexity, 13.0, rel_tol=1e-6)  # log-softmax in fp32
    assert math.isclose(
        result.metrics("val", char_level=True)["val/bpc"], math.log2(13), rel_tol=1e-6
    )


def test_evaluation_does_not_depend_on_the_batch_size_beyond_stream_starts():
    """A model without context (unigram) gives the same loss for any stream layout."""
    from pipeline.tasks.lm_eval import evaluate_lm

    torch.manual_seed(0)
    table = torch.randn(11)

    class Unigram(nn.Module):
        def forward(self, ids, mask, state=None):
            return table.expand(*ids.shape, 11), None

    ids = torch.randint(0, 11, (500,))
    losses = {
        b: evaluate_lm(
            Unigram(), ids, batch_size=b, bptt=13, pad_id=0, device=torch.device("cpu")
        ).loss
        for b in (1, 3, 20)
    }
    assert max(losses.values()) - min(losses.values()) < 1e-6 * min(losses.values())  # fp32


@pytest.mark.parametrize("encoder", ["lstm", "gru", "rnn", "scratch_lstm"])
def test_each_causal_encoder_trains_as_a_language_model(encoder, tmp_path):
    """Built from a composed config, trained one epoch with state carried, and its loss
    falls below a uniform guess on a repetitive stream."""
    from hydra import compose, initialize_config_module

    from pipeline.model.assembly import build_language_model
    from pipeline.tasks.lm_eval import evaluate_lm

    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose(
            config_name="config",
            overrides=[
                "task=lm",
                f"encoder={encoder}",
                "encoder.hidden_size=16",
                "encoder.num_layers=2",
                "embedding.dim=8",
            ],
        )
    torch.manual_seed(0)
    model = build_language_model(cfg, vocab_size=6, pad_id=0)
    ids = torch.tensor([1, 2, 3, 4, 5] * 60)  # period 5: learnable from context alone
    trainer = TrainerConfig(
        batch_size=4,
        eval_batch_size=4,
        bptt=7,
        max_epochs=3,
        progress="none",
        monitor="val/perplexity",
        monitor_mode="min",
    )
    train_lm(model, ids, trainer, OptimizerConfig(lr=0.02, weight_decay=0.0), tmp_path)
    result = evaluate_lm(model, ids, batch_size=4, bptt=7, pad_id=0, device=torch.device("cpu"))
    assert result.tokens == ids.numel() - 1
    assert result.perplexity < 3.0  # uniform over the 5 symbols would be 5
