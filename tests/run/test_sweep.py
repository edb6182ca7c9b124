"""A Hydra multirun is one MLflow parent run with one nested child run per job.

Real sweeps through ``python -m pipeline -m``, recorded in a real SQLite store; the joblib
launcher (parallel jobs in worker processes) records the same shape.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.run.sweep import (
    best_child,
    child_name_suffix,
    fixed_overrides,
    parent_run_name,
    sweep_overrides,
)
from tests.cli import run_pipeline

TINY = [
    "task=sentiment",
    "data=sst2",
    "data.max_train_samples=300",
    "data.max_eval_samples=60",
    "trainer.max_epochs=1",
    "encoder.hidden_size=8",
    "embedding.dim=8",
    "tokenizer.vocab_size=800",
    "trainer.progress=none",
    "tracking.log_model=false",
]


def test_sweep_overrides_are_the_swept_keys_only():
    overrides = ["task=sentiment", "encoder=lstm,gru", "optimizer.lr=range(1,3)", "seed=1"]
    assert sweep_overrides(overrides, None) == {
        "encoder": "lstm,gru",
        "optimizer.lr": "range(1,3)",
    }
    assert fixed_overrides(overrides) == {"task": "sentiment", "seed": "1"}
    # an Optuna-style sweeper declares its search space in hydra.sweeper.params
    assert sweep_overrides([], {"optimizer.lr": "interval(1e-4, 1e-2)"}) == {
        "optimizer.lr": "interval(1e-4, 1e-2)"
    }


def test_names_say_what_differs():
    assert parent_run_name({"encoder": "lstm,gru"}) == "sweep-encoder=lstm,gru"
    assert parent_run_name({}) == "sweep-multirun"
    swept = ["encoder", "optimizer.lr", "encoder.bidirectional"]
    job = ["task=sentiment", "encoder=gru", "optimizer.lr=0.01", "encoder.bidirectional=true"]
    # encoder and bidirectional already show in `gru-h128-bi-sst2`; the lr does not
    assert child_name_suffix(job, swept) == "-lr=0.01"
    assert child_name_suffix(job, []) == ""


def _run(name: str):
    return SimpleNamespace(info=SimpleNamespace(run_name=name, run_id=name))


def test_best_child_follows_the_monitor_mode():
    runs = [_run("a"), _run("b"), _run("c")]
    scores = {"a": 0.5, "b": 0.7}  # c logged no value
    assert best_child(runs, scores, "max").info.run_name == "b"
    assert best_child(runs, scores, "min").info.run_name == "a"
    assert best_child(runs, {}, "max") is None


@pytest.fixture(scope="module")
def env(data_dir, hf_cache) -> dict[str, str]:
    env = {
        **os.environ,
        "PIPELINE_DATA_DIR": str(data_dir),
        "HF_DATASETS_CACHE": str(hf_cache),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def sweep(cwd: Path, env: dict[str, str], *overrides: str) -> subprocess.CompletedProcess:
    return run_pipeline("-m", *TINY, *overrides, cwd=cwd, env=env, timeout=600)


def runs_by_name(cwd: Path) -> dict[str, object]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sentiment")
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}


def assert_parent_with_children(cwd: Path, parent_name: str, children: set[str]) -> None:
    runs = runs_by_name(cwd)
    parent = runs.pop(parent_name)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pipeline.run.sweep"] == "parent"
    assert set(runs) == children
    for child in runs.values():
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    best_of = {  # each child's best epoch, not its last
        r.info.run_id: max(
            m.value for m in client.get_metric_history(r.info.run_id, "val/accuracy")
        )
        for r in runs.values()
    }
    best = max(runs.values(), key=lambda r: best_of[r.info.run_id])
    for child in runs.values():  # on the parent too, one metric per child
        name = child.info.run_name.replace("=", "_")
        assert parent.data.metrics[f"child/{name}/best/val/accuracy"] == best_of[child.info.run_id]
    assert parent.data.metrics["best/val/accuracy"] == best_of[best.info.run_id]
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert parent.data.params["sweep.encoder"] == "lstm,gru"
    assert parent.data.params["fixed.data"] == "sst2"


def test_a_sweep_is_one_parent_with_a_child_per_job(tmp_path, env):
    done = sweep(tmp_path, env, "encoder=lstm,gru", "optimizer.lr=0.01,0.003")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_parent_with_children(
        tmp_path,
        "sweep-encoder=lstm,gru optimizer.lr=0.01,0.003",
        {
            "lstm-h8-sst2-lr=0.01",
            "lstm-h8-sst2-lr=0.003",
            "gru-h8-sst2-lr=0.01",
            "gru-h8-sst2-lr=0.003",
        },
    )
    assert "best val/accuracy" in done.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None,
    reason="hydra-joblib-launcher is not installed (pip install hydra-joblib-launcher)",
)
def test_parallel_jobs_record_the_same_shape(tmp_path, env):
    done = sweep(
        tmp_path, env, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "encoder=lstm,gru"
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_parent_with_children(tmp_path, "sweep-encoder=lstm,gru", {"lstm-h8-sst2", "gru-h8-sst2"})
    parent = runs_by_name(tmp_path)["sweep-encoder=lstm,gru"]
    assert parent.data.tags["launcher"].endswith("JoblibLauncher")


def test_a_sweep_that_fails_marks_its_parent_failed(tmp_path, env):
    done = sweep(tmp_path, env, "encoder=lstm,gru", f"data.dir={tmp_path / 'nowhere'}")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    runs = runs_by_name(tmp_path)
    parent = runs.pop("sweep-encoder=lstm,gru")
    assert parent.info.status == "FAILED"
    assert [r.info.status for r in runs.values()] == ["FAILED"]  # the first job; none after it


def test_without_tracking_a_sweep_records_nothing(tmp_path, env):
    done = sweep(tmp_path, env, "encoder=lstm,gru", "tracking=none")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "mlflow.db").exists()
    assert "mlflow sweep" not in done.stdout
