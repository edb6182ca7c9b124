"""`python -m pipeline` end to end on a slice of real data, recorded in a real MLflow store,
then read back through a real `mlflow server` over its REST API."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.cli import cli_env, run_pipeline
from tests.servers import free_port, start_mlflow_server, stop

QUICK = [
    "data=sst2",
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
    "data.max_train_samples=3000",
    "data.max_eval_samples=200",
    "trainer.max_epochs=2",
    "trainer.batch_size=32",
    "embedding.dim=32",
    "optimizer.lr=0.01",
    "encoder.hidden_size=24",
    "tokenizer.vocab_size=3000",
    "seed=7",
]


def pipeline(
    cwd: Path, env: dict[str, str], *overrides: str, timeout: int = 300
) -> subprocess.CompletedProcess:
    return run_pipeline(*overrides, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, data_dir) -> tuple[Path, dict[str, str]]:
    """A folder and environment of this module's own: its own datasets cache, so that its
    first run tokenizes whatever other tests ran before it (the cache test relies on it)."""
    cwd = tmp_path_factory.mktemp("run")
    return cwd, cli_env(data_dir, tmp_path_factory.mktemp("hf_cache_end_to_end"))


@pytest.fixture(scope="module")
def first_run(workdir) -> subprocess.CompletedProcess:
    cwd, env = workdir
    done = pipeline(cwd, env, *QUICK)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def runs_in(db: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("sentiment")
    return client, client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])


def test_run_is_recorded_in_the_default_store(first_run, workdir):
    cwd, _ = workdir
    assert (cwd / "mlflow.db").is_file(), "MLflow's default store is ./mlflow.db"
    client, runs = runs_in(cwd / "mlflow.db")
    run = runs[0]
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in (
        "train/loss",
        "val/loss",
        "val/accuracy",
        "val/f1",
        "test/loss",
        "test/accuracy",
        "test/f1",
        "train/samples_per_s",
    ):
        assert name in metrics, name
    assert len(client.get_metric_history(run.info.run_id, "val/accuracy")) == 2  # per epoch
    params = run.data.params
    assert params["encoder.hidden_size"] == "24" and params["data"] == "sst2"
    assert params["trainer.max_epochs"] == "2" and params["seed"] == "7"
    tags = run.data.tags
    for tag in ("task", "data", "encoder", "git_commit", "device", "n_params"):
        assert tag in tags, tag
    assert tags["task"] == "sentiment" and tags["encoder"] == "lstm"
    assert re.fullmatch(r"lstm-h24-sst2-[0-9a-f]{4}", run.info.run_name)
    # Source: the command as a shell would take it back (quoted), not __main__.py
    command = "python -m pipeline " + shlex.join(QUICK)
    assert tags["mlflow.source.name"] == command
    assert tags["mlflow.note.content"].startswith(f"`{command}`")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "tokenizer", "plots", "reports"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {
        "plots/learning_curves.png",
        "plots/confusion_matrix.png",
        "plots/classification_report.png",
        "plots/worst_validation_errors.png",
    }  # no attention.png: the default LSTM exposes no attention
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert reports == {
        "reports/classification_report.json",
        "reports/classification_report.txt",
        "reports/worst_validation_errors.csv",
    }
    # a better-than-chance model from 3,000 training phrases
    assert metrics["test/accuracy"] > 0.55


def test_summary_names_metrics_checkpoint_run_and_ui(first_run):
    out = first_run.stdout
    assert "test/accuracy" in out and "best.pt" in out
    assert "mlflow run" in out and "mlflow ui" in out


def test_the_terminal_is_the_runs_own(first_run, workdir):
    """A header that repeats the command line; no library chatter (MLflow's INFO lines on a
    new store and experiment); no empty job log left in the output folder (issue 16)."""
    cwd, _ = workdir
    assert f"  overrides  {' '.join(QUICK)}" in first_run.stdout
    assert "seed 7 · device " in first_run.stdout
    assert "INFO mlflow" not in first_run.stdout + first_run.stderr, first_run.stderr
    (folder,) = {p.parent for p in cwd.glob("outputs/*/*/best.pt")}
    assert not list(folder.glob("*.log")), sorted(p.name for p in folder.iterdir())


def test_checkpoints_are_written(first_run, workdir):
    cwd, _ = workdir
    from pipeline.model.checkpoint import load_checkpoint

    (best,) = cwd.glob("outputs/*/*/best.pt")
    payload = load_checkpoint(best)
    assert payload["labels"] == ["negative", "positive"]
    assert payload["config"]["encoder"]["hidden_size"] == 24
    assert (best.parent / "last.pt").is_file()


def test_logged_model_loads_back_and_predicts(first_run, workdir):
    """The logged model is a pyfunc model: a ``text`` column of raw strings in, labels and
    probabilities out."""
    cwd, _ = workdir
    import mlflow
    import pandas as pd

    client, runs = runs_in(cwd / "mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{cwd / 'mlflow.db'}")
    run = runs[0]  # its model is named after it
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/{run.info.run_name}")
    texts = ["a moving, beautifully acted film", "dull and far too long", ""]
    out = model.predict(pd.DataFrame({"text": texts}))
    assert list(out.columns) == ["label", "p_negative", "p_positive"]
    assert len(out) == 3 and set(out["label"]) <= {"negative", "positive"}
    totals = out[["p_negative", "p_positive"]].sum(axis=1)
    assert all(abs(total - 1.0) < 1e-5 for total in totals)
    best = out[["p_negative", "p_positive"]].idxmax(axis=1).str.removeprefix("p_")
    assert list(best) == list(out["label"])


def test_second_identical_run_reads_tokens_from_cache(first_run, workdir):
    cwd, env = workdir
    assert "all splits from cache" not in first_run.stdout
    again = pipeline(cwd, env, *QUICK)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "all splits from cache" in again.stdout
    # same seed, same data, same model: the same result
    first = [ln for ln in first_run.stdout.splitlines() if "test/accuracy" in ln]
    second = [ln for ln in again.stdout.splitlines() if "test/accuracy" in ln]
    assert first == second


def test_failure_after_the_run_started_marks_it_failed(first_run, workdir, tmp_path):
    cwd, env = workdir
    done = pipeline(cwd, env, *QUICK, f"data.dir={tmp_path / 'nowhere'}")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    _, runs = runs_in(cwd / "mlflow.db")
    failed = runs[-1]
    assert failed.info.status == "FAILED"
    assert "nowhere" in failed.data.tags["error"]


def test_a_real_mlflow_server_serves_the_run(first_run, workdir):
    cwd, _ = workdir
    port = free_port()
    server = start_mlflow_server(cwd / "mlflow.db", port, cwd)
    base = f"http://127.0.0.1:{port}"
    try:

        def call(path: str, body: dict | None = None) -> dict:
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(
                f"{base}{path}", data=data, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)

        experiment = call("/api/2.0/mlflow/experiments/get-by-name?experiment_name=sentiment")
        eid = experiment["experiment"]["experiment_id"]
        found = call(
            "/api/2.0/mlflow/runs/search",
            {"experiment_ids": [eid], "filter": "attributes.status = 'FINISHED'"},
        )
        run = found["runs"][0]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert 0.0 <= metrics["test/accuracy"] <= 1.0
        assert {"val/accuracy", "val/f1", "train/loss"} <= set(metrics)
    finally:
        stop(server)
