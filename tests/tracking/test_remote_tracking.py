"""Tracking to a real `mlflow server`: unreachable at start, and lost mid-run.

An unreachable server is one clear error before any data is loaded. A server that goes down
while training runs costs nothing: training goes on, the calls are queued and a local
journal keeps every param and metric; when the server answers again, everything is sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import run_pipeline
from tests.servers import free_port, start_mlflow_server, stop

QUICK = [
    "data=sst2",
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
    "data.max_train_samples=1500",
    "data.max_eval_samples=200",
    "trainer.max_epochs=3",
    "trainer.patience=0",
    "embedding.dim=16",
    "encoder.hidden_size=16",
    "tokenizer.vocab_size=1500",
    "trainer.progress=none",
    "tracking.retry_seconds=1",
]


@pytest.fixture
def env(data_dir, hf_cache) -> dict[str, str]:
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_DATASETS_CACHE": str(hf_cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_unreachable_server_is_a_clear_error_before_any_work(tmp_path, env):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = run_pipeline(*QUICK, f"tracking.uri={uri}", cwd=tmp_path, env=env, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"The MLflow server at {uri} does not answer" in done.stderr
    assert "tracking=none" in done.stderr  # how to go on without it
    assert "data:" not in done.stdout and "epoch" not in done.stdout
    assert time.monotonic() - started < 60  # no minutes of HTTP retries


def train_while(tmp_path: Path, env: dict, uri: str, final_wait: int, on_line) -> tuple[int, str]:
    """Run a training, calling ``on_line(line)`` for each line it prints (stdout + stderr)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            *QUICK,
            f"tracking.uri={uri}",
            f"tracking.final_wait_seconds={final_wait}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            on_line(line)
        return process.wait(timeout=300), "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()


def journal(tmp_path: Path) -> list[dict]:
    (path,) = tmp_path.glob("outputs/*/*/tracking.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_server_lost_mid_run_then_back_loses_nothing(tmp_path, env):
    port = free_port()
    db = tmp_path / "server.db"
    servers = [start_mlflow_server(db, port, tmp_path)]
    state = {"killed": False, "restarted": False}

    def on_line(line: str) -> None:
        if line.startswith("epoch 1:") and not state["killed"]:
            stop(servers[0])  # the server goes down during epoch 2
            state["killed"] = True
        if "stopped answering" in line and not state["restarted"]:
            servers.append(start_mlflow_server(db, port, tmp_path))
            state["restarted"] = True

    try:
        code, output = train_while(tmp_path, env, f"http://127.0.0.1:{port}", 180, on_line)
    finally:
        for server in servers:
            stop(server)
    assert code == 0, output[-3000:]
    assert state == {"killed": True, "restarted": True}, output[-3000:]
    assert "Traceback" not in output
    assert "answers again; queued calls sent" in output

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name("sentiment").experiment_id])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3]  # every epoch, none twice
    assert "test/accuracy" in run.data.metrics
    # artifacts logged while the server was down were sent too (the server keeps them here)
    (folder,) = tmp_path.glob(f"mlartifacts/*/{run.info.run_id}/artifacts")
    assert {p.name for p in folder.iterdir()} >= {"plots", "config.yaml", "tokenizer"}
    # the journal holds the same per-epoch values
    logged = {
        r["step"]: r["metrics"]["val/accuracy"]
        for r in journal(tmp_path)
        if r["event"] == "metrics" and "val/accuracy" in r["metrics"]
    }
    assert logged == {m.step: m.value for m in history}


def test_server_that_never_returns_leaves_the_record_in_the_journal(tmp_path, env):
    port = free_port()
    server = start_mlflow_server(tmp_path / "server.db", port, tmp_path)

    def on_line(line: str) -> None:
        if line.startswith("epoch 1:"):
            stop(server)

    try:
        code, output = train_while(tmp_path, env, f"http://127.0.0.1:{port}", 0, on_line)
    finally:
        stop(server)
    assert code == 0, output[-3000:]  # training finished and its summary printed
    assert "Traceback" not in output
    assert "test/accuracy" in output
    assert "still does not answer" in output and "tracking.jsonl" in output
    records = journal(tmp_path)
    epochs = [r["step"] for r in records if r["event"] == "metrics" and "val/loss" in r["metrics"]]
    assert epochs == [1, 2, 3]
    assert records[-1] == {**records[-1], "event": "end", "status": "FINISHED"}
    assert any(r["event"] == "params" and "encoder.hidden_size" in r["params"] for r in records)
