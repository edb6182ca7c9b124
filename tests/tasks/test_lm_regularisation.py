"""Language-model regularisation in the task: ``trainer.ar_alpha`` and ``trainer.tar_beta``
(AWD-LSTM's activation penalties, mask-aware) and ``trainer.bptt_jitter``."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline import registry
from pipeline.config.schemas import TrainerConfig
from pipeline.model.assembly import LanguageModel
from pipeline.tasks.language_model import LanguageModelTask
from pipeline.tasks.lm_eval import loss_sum
from pipeline.training.context import local_context

VOCAB = 12


def language_model() -> LanguageModel:
    torch.manual_seed(0)
    parts = {}
    for group, name, fields in (
        ("embedding", "learned", {"dim": 8, "dropout": 0.0}),
        ("encoder", "lstm", {"hidden_size": 6}),
        ("head", "lm", {}),
    ):
        entry = registry.ALL[group].get(name)
        parts[group] = (entry.cls, entry.config(name=name, **fields))
    embedding = parts["embedding"][0](parts["embedding"][1], VOCAB, 0)
    encoder = parts["encoder"][0](parts["encoder"][1], 8)
    head = parts["head"][0](parts["head"][1], 6, VOCAB)
    return LanguageModel(embedding, encoder, head)


def task(tmp_path, **trainer_fields) -> LanguageModelTask:
    trainer = TrainerConfig(batch_size=3, bptt=7, **trainer_fields)
    ctx = local_context(trainer, checkpoint_dir=tmp_path, seed=3)
    ids = torch.randint(1, VOCAB, (30,), generator=torch.Generator().manual_seed(0))
    return LanguageModelTask.from_ids(ctx, {"train": ids, "validation": ids})


def gradients(model, loss) -> list[torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def last_window(lm_task):
    """The epoch's last window: its last stream is padded (29 targets in 3 streams of 10)."""
    *_, batch = lm_task.train_batches(1, 0).batches
    assert not batch[0].mask.all()
    return batch


@pytest.mark.parametrize(("alpha", "beta"), [(2.0, 0.0), (0.0, 3.0), (1.5, 0.5)])
def test_activation_penalties_enter_the_gradient_over_real_tokens_only(tmp_path, alpha, beta):
    lm_task = task(tmp_path, ar_alpha=alpha, tar_beta=beta)
    window, targets = batch = last_window(lm_task)
    model = language_model()
    summed, count, _ = lm_task.loss(model, batch, None)
    got = gradients(model, summed / count)

    assert summed.item() == manual(model, window, 0.0, 0.0)[1].item()  # reported: plain loss
    expected = gradients(model, manual(model, window, alpha, beta)[0] / targets)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    unpenalised = gradients(model, manual(model, window, 0.0, 0.0)[0] / targets)
    assert not all(torch.allclose(a, b) for a, b in zip(got, unpenalised, strict=True))


def manual(model, window, alpha: float, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(plain summed loss + targets * penalties, the plain summed loss), written out."""
    logits, _, h = model(window.inputs, window.mask, None, with_sequence=True)
    plain = loss_sum(logits, window.targets, window.mask)
    ar = h[window.mask].square().mean()  # real tokens only
    pairs = window.mask[:, 1:] & window.mask[:, :-1]
    tar = (h[:, 1:] - h[:, :-1])[pairs].square().mean()
    targets = int(window.mask.sum())
    return plain + targets * (alpha * ar + beta * tar), plain


def test_activation_penalties_off_are_the_plain_loss(tmp_path):
    lm_task = task(tmp_path)
    window, _ = batch = last_window(lm_task)
    model = language_model()
    summed, _, _ = lm_task.loss(model, batch, None)
    logits, _ = model(window.inputs, window.mask, None)
    assert torch.equal(summed, loss_sum(logits, window.targets, window.mask))
    assert dataclasses.fields(TrainerConfig)  # the options are fields with help texts
    help_texts = {f.name: f.metadata.get("help") for f in dataclasses.fields(TrainerConfig)}
    assert help_texts["ar_alpha"] and help_texts["tar_beta"]


def jitter_task(tmp_path, jitter: float, seed: int = 3) -> LanguageModelTask:
    trainer = TrainerConfig(batch_size=3, bptt=7, bptt_jitter=jitter, progress="none")
    ctx = local_context(trainer, checkpoint_dir=tmp_path, seed=seed)
    ids = torch.randint(1, VOCAB, (301,), generator=torch.Generator().manual_seed(0))
    return LanguageModelTask.from_ids(ctx, {"train": ids, "validation": ids[:50]})


def epoch_windows(lm_task, epoch: int, start: int = 0) -> list:
    return list(lm_task.train_batches(epoch, start).batches)


def test_bptt_jitter_varies_window_lengths_and_covers_the_streams_once(tmp_path):
    lm_task = jitter_task(tmp_path, 3.0)
    epoch = lm_task.train_batches(1, 0)
    batches = list(epoch.batches)
    assert len(batches) == epoch.steps
    lengths = [window.inputs.size(1) for window, _ in batches]
    assert len(set(lengths)) > 2  # they vary
    assert min(lengths[:-1]) >= 5  # only the last may be cut shorter, at the streams' end
    for window, targets in batches:
        assert window.lr_scale == window.inputs.size(1) / 7
        assert targets == int(window.mask.sum())
    streams = lm_task.streams
    assert torch.equal(torch.cat([w.inputs for w, _ in batches], dim=1), streams.inputs)
    assert torch.equal(torch.cat([w.targets for w, _ in batches], dim=1), streams.targets)


def test_bptt_jitter_is_reproducible_and_resumable(tmp_path):
    def lengths(lm_task, epoch, start=0):
        return [w.inputs.size(1) for w, _ in epoch_windows(lm_task, epoch, start)]

    first, again = jitter_task(tmp_path, 3.0), jitter_task(tmp_path, 3.0)
    assert lengths(first, 1) == lengths(again, 1)  # same seed, same epoch: same windows
    assert lengths(first, 2) != lengths(first, 1)  # a new draw each epoch
    assert lengths(jitter_task(tmp_path, 3.0, seed=4), 1) != lengths(first, 1)
    whole = epoch_windows(first, 2)
    resumed = epoch_windows(again, 2, start=4)  # a resume after window 4 reads the rest
    assert len(resumed) == len(whole) - 4
    for (a, ta), (b, tb) in zip(whole[4:], resumed, strict=True):
        assert torch.equal(a.inputs, b.inputs) and ta == tb and a.lr_scale == b.lr_scale


def test_bptt_jitter_zero_gives_todays_windows(tmp_path):
    from pipeline.data.streams import windows

    lm_task = jitter_task(tmp_path, 0.0)
    batches = epoch_windows(lm_task, 1)
    today = list(windows(lm_task.streams, 7, torch.device("cpu")))
    assert len(batches) == len(today) == lm_task.train_batches(2, 0).steps
    for (window, targets), expected, counted in zip(
        batches, today, lm_task.window_targets, strict=True
    ):
        assert window.lr_scale == 1.0 and targets == counted
        assert torch.equal(window.inputs, expected.inputs)
        assert torch.equal(window.mask, expected.mask)


def test_the_loop_scales_each_steps_lr_by_the_window_length(tmp_path, monkeypatch):
    from pipeline.config.schemas import OptimizerConfig
    from pipeline.training import loop, step

    seen: list[float] = []
    real = step.optimizer_step

    def spy(*args):
        seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(loop, "optimizer_step", spy)
    lm_task = jitter_task(tmp_path, 3.0)
    lm_task.ctx.optimizer = OptimizerConfig(name="sgd", lr=1.0, weight_decay=0.0)
    expected = [w.lr_scale for w, _ in epoch_windows(lm_task, 1)]
    lm_task.ctx.trainer.max_epochs = 1
    lm_task.ctx.trainer.monitor, lm_task.ctx.trainer.monitor_mode = "val/loss", "min"
    loop.fit(lm_task, language_model(), lm_task.ctx)
    assert seen == expected and len(set(seen)) > 1


def test_optimizer_step_scales_the_lr_for_one_step_only():
    from pipeline.training.step import optimizer_step

    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    model = torch.nn.Module()
    model.weight = weight
    optimizer_step((weight * torch.tensor([1.0, 2.0, 3.0])).sum(), model, optimizer, None, 0, 0.5)
    assert weight.detach().tolist() == [-0.5, -1.0, -1.5]
    assert optimizer.param_groups[0]["lr"] == 1.0
