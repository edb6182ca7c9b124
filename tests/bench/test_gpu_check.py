"""bench/gpu_check.sh in its dry mode (CPU, tiny sizes), and the plain cuDNN baseline's
optimizer: the check a GPU machine runs must work unchanged the day one is lent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))  # the benchmarks import each other by name

CHECKS = (
    "CUDA tests",
    "LSTM dtype, amp=true",
    "host syncs per step",
    "IMDb seed LSTM 32, len 80",
    "BiLSTM 2x8, len 40",
    "PTB medium 2x16",
)


def test_the_dry_run_writes_a_one_screen_summary_of_every_check(tmp_path, data_dir, hf_cache):
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "OUT": str(tmp_path)}
    env["HF_DATASETS_CACHE"] = str(hf_cache)
    done = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run", "--tracking", "none"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = (tmp_path / "gpu_check.txt").read_text().splitlines()
    assert len(lines) <= 24 and lines[0].startswith("== GPU check: CPU (dry run)")
    rows = {line.split("  ")[0].strip(): line for line in lines[1:-1]}
    assert set(rows) == set(CHECKS), lines
    for line in rows.values():
        assert " error " not in line, line
    assert "pipeline" in rows["PTB medium 2x16"] and "x; 2/2 epochs" in rows["PTB medium 2x16"]
    assert (tmp_path / "gpu_check.json").is_file()


def test_the_cudnn_baseline_trains_with_the_pipelines_optimizer_and_clipping():
    """bench/gpu_train.py's and gpu_check's hand-written loops step with the optimizer and
    the gradient clipping the pipeline uses for the same config, so their ratio measures the
    loop alone (issue 14: the baseline used plain Adam and no clipping)."""
    import common

    from pipeline.training.step import make_optimizer

    cfg = common.compose(list(common.SEED_OVERRIDES))
    model = common.seed_model(50)
    optimizer, clip = common.pipeline_optimizer(model, cfg, torch.device("cpu"))
    expected = make_optimizer(model.parameters(), cfg.optimizer, torch.device("cpu"))
    assert type(optimizer) is type(expected) and optimizer.defaults == expected.defaults
    assert clip == cfg.trainer.grad_clip > 0

    torch.manual_seed(0)
    ids, labels = torch.randint(1, 50, (8, 6)), torch.randint(0, 2, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    common.hand_written_epoch(model, sgd, ids, labels, 8, 0, grad_clip=1e-3)
    moved = torch.cat(
        [(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)]
    )
    assert float(moved.norm()) == pytest.approx(1e-3, rel=1e-3)  # one step of a clipped gradient
