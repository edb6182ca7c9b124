"""A sweep's parent and ``sweep_summary.json`` hold each child's BEST epoch, not its last.

In process and fast: real toy runs recorded as children of a parent run in a real SQLite
store (the Hydra job's ``current_sweep`` is stood in for), their validation accuracy
scripted so the best epoch is not the last; then the sweep callback's end, as Hydra calls it.
A failed child that never logged its ``best/val/*`` is read from its epochs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipeline.run import sweep
from pipeline.run.runner import run
from tests.run.test_resume_checks import VAL_ACCURACY, scripted, toy_run  # noqa: F401
from tests.run.test_runner import in_tmp  # noqa: F401 (a fixture)


def history(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def failed_child(client, experiment_id: str, parent_id: str) -> str:
    """A job that died after two epochs: per-epoch metrics only, status FAILED."""
    child = client.create_run(
        experiment_id, run_name="gru-h16", tags={"mlflow.parentRunId": parent_id}
    )
    for epoch, (accuracy, loss) in enumerate([(0.6, 0.9), (0.55, 0.8)], start=1):
        client.log_metric(child.info.run_id, "val/accuracy", accuracy, step=epoch)
        client.log_metric(child.info.run_id, "val/loss", loss, step=epoch)
    client.set_terminated(child.info.run_id, "FAILED")
    return child.info.run_id


@pytest.fixture()
def swept(in_tmp, scripted, mlflow_store, monkeypatch):  # noqa: F811
    """Two finished children (best epoch 2 of 3, the second one better) and a failed one."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_store)
    experiment_id = client.create_experiment(f"sweep-best-{in_tmp.name}")
    parent = client.create_run(experiment_id, run_name="sweep-encoder=lstm,gru")
    info = sweep.SweepInfo(parent.info.run_id, experiment_id, mlflow_store, ["encoder"])
    monkeypatch.setattr(sweep, "current_sweep", lambda: info)
    tracked = [f"tracking.uri={mlflow_store}", "tracking.log_model=false"]
    tracked.append(f"tracking.experiment=sweep-best-{in_tmp.name}")
    first = run(toy_run(in_tmp, *tracked, tracking="mlflow"))
    monkeypatch.setitem(VAL_ACCURACY, 2, VAL_ACCURACY[2] + 0.05)
    second = run(toy_run(in_tmp, *tracked, "encoder.hidden_size=8", tracking="mlflow"))
    failed = failed_child(client, experiment_id, parent.info.run_id)
    callback = sweep.MlflowSweepCallback()
    callback.client, callback.info = client, info
    trainer = {"monitor": "val/accuracy", "monitor_mode": "max"}
    callback.on_multirun_end(OmegaConf.create({"trainer": trainer}))
    return client, parent.info.run_id, [first.run_id, second.run_id], failed


def test_the_parent_holds_each_childs_best_and_the_best_childs_values(swept):
    client, parent_id, (first, second), failed = swept
    parent = client.get_run(parent_id).data.metrics
    best_of = {i: max(history(client, i, "val/accuracy").values()) for i in (first, second)}
    assert best_of[second] > best_of[first]
    for child in (first, second):
        name = client.get_run(child).info.run_name
        assert parent[f"child/{name}/best/val/accuracy"] == best_of[child]
    assert not any("gru-h16" in key for key in parent)  # a failed child is no candidate
    best = client.get_run(second).data.metrics
    best_epoch = int(best["best_epoch"])
    assert best_epoch != max(history(client, second, "val/accuracy"))  # best is not the last
    for key in ("val/accuracy", "val/loss"):
        assert parent[f"best/{key}"] == history(client, second, key)[best_epoch]
    assert parent["best/test/accuracy"] == best["test/accuracy"]


def test_the_summary_holds_each_childs_best_epoch(swept, tmp_path):
    client, parent_id, children, failed = swept
    path = client.download_artifacts(parent_id, "sweep_summary.json", str(tmp_path))
    rows = {row["run_id"]: row for row in json.loads(Path(path).read_text())["runs"]}
    assert set(rows) == {*children, failed}
    for child in children:
        epochs = history(client, child, "val/accuracy")
        best_epoch = max(epochs, key=epochs.get)
        assert best_epoch != max(epochs)  # the last epoch is not the best
        assert rows[child]["best_epoch"] == best_epoch
        for key in ("val/accuracy", "val/loss"):
            assert rows[child][key] == history(client, child, key)[best_epoch], key
        assert rows[child]["test/accuracy"] == client.get_run(child).data.metrics["test/accuracy"]
    # the failed child logged no best/val/*: its best epoch (1) is read from its epochs
    assert rows[failed]["status"] == "FAILED" and rows[failed]["best_epoch"] == 1
    assert rows[failed]["val/accuracy"] == 0.6 and rows[failed]["val/loss"] == 0.9


def test_the_leaderboard_ranks_by_best_epochs_and_a_failed_child_last(swept, tmp_path):
    client, parent_id, (first, second), failed = swept
    path = client.download_artifacts(parent_id, "leaderboard.md", str(tmp_path))
    lines = [line.split(" | ") for line in Path(path).read_text().splitlines()]
    header, rows = lines[0], [cells for cells in lines[2:] if len(cells) > 2]
    assert header[4] == "best/val/accuracy" and header[-1] == "status |"
    names = [client.get_run(i).info.run_name for i in (second, first)] + ["gru-h16"]
    assert [cells[2] for cells in rows] == names  # the better best epoch first
    assert rows[0][0] == "| *" and rows[-1][-1] == "FAILED |"
    best = max(history(client, second, "val/accuracy").values())  # not its last epoch's
    assert rows[0][4] == f"{best:.4f}" and rows[-1][4] == "0.6000"
