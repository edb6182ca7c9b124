"""CUDA paths (cuDNN RNNs, AMP): skipped where no GPU is present (CI never has one)."""

import pytest
import torch

from pipeline.config.schemas import OptimizerConfig, TrainerConfig
from pipeline.data.batching import EncodedSplit
from pipeline.model.assembly import build_model
from pipeline.runtime.device import autocast_dtype, resolve_device
from pipeline.tasks.classification import ClassificationTask
from pipeline.training.context import local_context
from pipeline.training.loop import fit

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_device_is_cpu_without_cuda():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        assert autocast_dtype(torch.device("cpu"), amp=True) is None


@cuda
@pytest.mark.parametrize("amp", [True, False])
def test_training_on_cuda_with_and_without_amp(amp, tmp_path):
    import numpy as np
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "embedding": {"name": "learned", "dim": 16, "dropout": 0.0},
            "encoder": {
                "name": "lstm",
                "hidden_size": 16,
                "num_layers": 2,
                "bidirectional": True,
                "dropout": 0.0,
            },
            "pooler": {"name": "max"},
            "head": {"name": "classifier", "hidden_size": 0, "dropout": 0.0},
        }
    )
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 256)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(2, 50, offsets[-1])
    labels = torch.from_numpy((values[offsets[:-1]] % 2).astype(np.int64))
    split = EncodedSplit.from_flat(values, offsets, 0, labels)
    model = build_model(cfg, 50, 0, 2)
    trainer = TrainerConfig(max_epochs=3, device="cuda", amp=amp, progress="none")
    ctx = local_context(trainer, OptimizerConfig(lr=1e-2), checkpoint_dir=tmp_path)
    splits = {"train": split, "validation": split}
    result = fit(ClassificationTask.from_splits(ctx, splits, ["a", "b"]), model, ctx)
    assert result.history[-1]["val/accuracy"] > 0.6
    assert next(model.parameters()).is_cuda


@cuda
@pytest.mark.parametrize("amp_rnn", ["fp32", "autocast"])
def test_the_lstm_dtype_under_the_amp_policy(amp_rnn):
    """amp_rnn=fp32 (the default): the LSTMs run in fp32 outside autocast, the head in the
    autocast dtype; amp_rnn=autocast: cuDNN runs them in half precision, so the loss is
    scaled."""
    from pipeline.runtime.amp import apply_policy, policy_for
    from tests.runtime.test_amp import Dtypes, config

    device = torch.device("cuda")
    policy = policy_for(device, TrainerConfig(amp=True, amp_rnn=amp_rnn))
    model = build_model(config("classifier", bidirectional=True), 30, 0, 3).to(device)
    apply_policy(model, policy)
    seen = Dtypes(model)
    ids = torch.randint(1, 30, (4, 7), device=device)
    mask = torch.ones(4, 7, dtype=torch.bool, device=device)
    with torch.autocast("cuda", dtype=policy.dtype):
        logits = model(ids, mask)
    logits.float().sum().backward()
    assert seen.linear == {policy.dtype}
    if amp_rnn == "fp32":
        assert seen.rnn == {torch.float32}
        assert policy.grad_scaler == (policy.dtype == torch.float16)
    else:  # fp16 on cuDNN's autocast wrapper (the reason for the policy); never fp32
        assert seen.rnn <= {torch.float16, torch.bfloat16} and policy.grad_scaler


@cuda
@pytest.mark.parametrize("amp_dtype", [None, "auto", "fp16"], ids=["fp32", "auto", "fp16"])
@pytest.mark.parametrize("kind", ["classifier", "lm"])
def test_training_steps_do_not_sync_on_cuda(kind, amp_dtype, tmp_path):
    """The steps of both tasks run with CUDA's sync debug mode set to "error" (progress
    reads off: they are the host reads allowed, every log_every_n_steps)."""
    from tests.training import test_host_syncs as syncs

    task, model = getattr(syncs, "classifier" if kind == "classifier" else "language_model")(
        tmp_path
    )
    trainer = task.ctx.trainer
    trainer.amp, trainer.amp_dtype = amp_dtype is not None, amp_dtype or "auto"
    trainer.progress, trainer.log_every_n_steps = "none", 10**6
    assert task.ctx.device.type == "cuda"

    def strict(batches):
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield from batches
        finally:
            torch.cuda.set_sync_debug_mode(0)

    trained = syncs.train_one_epoch(task, model, strict)
    assert trained.seen > 0 and next(model.parameters()).is_cuda
