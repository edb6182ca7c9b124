"""torchrun with two CPU processes (gloo + DDP) trains like one process at the same global
batch: without dropout, every metric agrees within 1e-4 (float summation order is all that
differs); one MLflow run and one set of checkpoints are written, by rank 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SMALL = [
    "task=sentiment",
    "data=sst2",
    "data.max_train_samples=1024",
    "data.max_eval_samples=200",
    "trainer.max_epochs=2",
    "trainer.batch_size=32",  # the global batch: 16 rows per process under torchrun
    "encoder.hidden_size=16",
    "embedding.dim=16",
    "embedding.dropout=0",
    "head.dropout=0",
    "tokenizer.vocab_size=2000",
    "trainer.progress=none",
    "tracking.log_model=false",
]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def env(data_dir, hf_cache) -> dict[str, str]:
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_DATASETS_CACHE": str(hf_cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def metrics(cwd: Path) -> tuple[object, dict[str, list[float]]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("sentiment").experiment_id])
    curves = {
        key: [
            m.value
            for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        ]
        for key in run.data.metrics
        if key.split("/")[0] in ("val", "test") or key == "train/loss"
    }
    return run, curves


def test_two_processes_match_one_at_the_same_global_batch(tmp_path, env):
    single, pair = tmp_path / "single", tmp_path / "pair"
    single.mkdir(), pair.mkdir()
    one = subprocess.run(
        [sys.executable, "-m", "pipeline", *SMALL],
        cwd=single,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "pipeline",
            *SMALL,
        ],
        cwd=pair,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    assert two.stdout.count("== run finished") == 1  # rank 0 alone speaks

    _, expected = metrics(single)
    run, got = metrics(pair)  # exactly one run in the store
    assert run.data.tags["world_size"] == "2"
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, abs=TOLERANCE), key
    assert len(list(pair.glob("outputs/*/*/best.pt"))) == 1
