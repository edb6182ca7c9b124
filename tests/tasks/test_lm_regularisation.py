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
