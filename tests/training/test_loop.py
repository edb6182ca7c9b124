"""Pieces of the training step (``pipeline.training.loop``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline.training.step import clip_gradients


def model_with_gradients(scale: float) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 3))
    for p in model.parameters():
        p.grad = torch.randn_like(p) * scale
    model[1].bias.grad = None  # a parameter without a gradient is skipped, as torch does
    return model


@pytest.mark.parametrize("scale", [1e-3, 1.0, float("nan")], ids=["under", "over", "nan"])
def test_clip_gradients_matches_clip_grad_norm_bit_for_bit(scale):
    ours, theirs = model_with_gradients(scale), model_with_gradients(scale)
    clip_gradients(ours.parameters(), 0.5)
    torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        if a.grad is None:
            assert b.grad is None
            continue
        assert torch.equal(a.grad.isnan(), b.grad.isnan())
        assert torch.equal(a.grad.nan_to_num(), b.grad.nan_to_num())
    norm = torch.nn.utils.get_total_norm([p.grad for p in ours.parameters() if p.grad is not None])
    if math.isfinite(scale):
        assert float(norm) <= 0.5 + 1e-5  # clipped where it was over


def test_clip_gradients_without_any_gradient_does_nothing():
    model = nn.Linear(2, 2)
    clip_gradients(model.parameters(), 1.0)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("recurrent", [True, False])
def test_compile_skips_recurrent_models_with_a_warning(recurrent, tmp_path, capsys):
    """trainer.compile=true compiles for minutes and gains nothing around a cuDNN/oneDNN
    RNN: such a model runs eagerly, and the run says why (issue 14)."""
    from pipeline.config.schemas import TrainerConfig
    from pipeline.training.context import local_context
    from pipeline.training.wrap import wrap_model

    layer = nn.LSTM(8, 8, batch_first=True) if recurrent else nn.Linear(8, 8)
    model = nn.Sequential(nn.Embedding(50, 8), layer)
    ctx = local_context(TrainerConfig(compile=True, device="cpu"), checkpoint_dir=tmp_path)
    net = wrap_model(model, ctx)
    warned = "trainer.compile=true ignored" in capsys.readouterr().out
    assert (net is model) == recurrent and warned == recurrent
