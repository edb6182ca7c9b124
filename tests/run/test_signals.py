"""A signal before the training loop (while the data loads) ends the run at once: one
``stopped:`` line, the signal's exit code, the MLflow run KILLED (never left RUNNING)."""

from __future__ import annotations

import signal

import pytest

from tests.cli import cli_env, start_pipeline

ARGS = [
    "data=sst2",
    "data.max_train_samples=3000",
    "trainer.max_epochs=1",
    "encoder.hidden_size=8",
    "embedding.dim=8",
    "trainer.progress=none",
    "tracking.log_model=false",
    "tracking.experiment=signals",
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_data_loads_ends_the_run_killed(
    tmp_path, data_dir, mlflow_store, signum
):
    from mlflow import MlflowClient

    env = cli_env(
        data_dir, hf_cache=tmp_path / "hf_cache"
    )  # a fresh cache: tokenizing takes a while
    process = start_pipeline(*ARGS, f"tracking.uri={mlflow_store}", cwd=tmp_path, env=env)
    out = []
    for line in process.stdout:
        out.append(line)
        if line.startswith("data: "):  # read; the tokenizer is being fitted now
            process.send_signal(signum)
    code = process.wait(timeout=120)
    text = "".join(out)

    name = signal.Signals(signum).name
    assert code == 128 + signum, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    assert f"stopped: Interrupted ({name}) before training started" in text
    assert not list(tmp_path.glob("outputs/*/*/*.pt"))
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("signals").experiment_id
    (stopped,) = [
        r for r in client.search_runs([experiment]) if name in r.data.tags.get("error", "")
    ]
    assert stopped.info.status == "KILLED"
