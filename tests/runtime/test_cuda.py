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
