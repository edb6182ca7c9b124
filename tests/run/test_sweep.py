"""A Hydra multirun is one MLflow parent run with one nested child run per job.

Real sweeps through ``python -m pipeline -m``, recorded in a real SQLite store; the joblib
launcher (parallel jobs in worker processes) records the same shape.
"""

from __future__ import annotations

import importlib.util
import os
import re
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
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
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
    readable = {re.sub(r"-[0-9a-f]{4}$", "", name) for name in runs}  # less the unique suffix
    assert readable == children and len(readable) == len(runs)
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


PARENT = "sweep-encoder=lstm,gru optimizer.lr=0.01,0.003"


@pytest.fixture(scope="module")
def swept(tmp_path_factory, env) -> tuple[Path, subprocess.CompletedProcess]:
    """One real 4-job sweep (its folder and its output), shared by the tests that read it."""
    cwd = tmp_path_factory.mktemp("sweep")
    done = sweep(cwd, env, "encoder=lstm,gru", "optimizer.lr=0.01,0.003")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return cwd, done


def test_a_sweep_is_one_parent_with_a_child_per_job(swept):
    cwd, done = swept
    assert_parent_with_children(
        cwd,
        PARENT,
        {
            "lstm-h8-sst2-lr=0.01",
            "lstm-h8-sst2-lr=0.003",
            "gru-h8-sst2-lr=0.01",
            "gru-h8-sst2-lr=0.003",
        },
    )
    assert "best val/accuracy" in done.stdout
    children = [r for name, r in runs_by_name(cwd).items() if not name.startswith("sweep-")]
    keys = set().union(*(child.data.params for child in children))
    varying = {k for k in keys if len({child.data.params.get(k) for child in children}) > 1}
    assert varying == {"encoder", "optimizer.lr", "n_params"}  # what was swept, and its size


def table(text: str, title: str) -> tuple[list[str], list[tuple[bool, str, list[str]]]]:
    """The header and rows (winner?, run name, cells) of the table printed after ``title``."""
    lines = text.split(title, 1)[1].strip("\n").splitlines()
    rows = []
    for line in lines[1:]:
        if line.startswith("* best by"):  # the legend ends the table
            break
        cells = line.split()
        winner = cells[0] == "*"
        rows.append((winner, cells[2 if winner else 1], cells))
    return lines[0].split(), rows


def children_of(cwd: Path) -> dict[str, object]:
    return {n: r for n, r in runs_by_name(cwd).items() if not n.startswith("sweep-")}


def best_accuracy(cwd: Path, runs: dict[str, object]) -> dict[str, float]:
    """Each child's best epoch's val/accuracy, from its per-epoch history."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    history = client.get_metric_history
    return {
        n: max(m.value for m in history(r.info.run_id, "val/accuracy")) for n, r in runs.items()
    }


def test_the_leaderboard_shows_the_children_best_first_also_on_the_parent(swept, tmp_path):
    cwd, done = swept
    header, rows = table(done.stdout, "Sweep leaderboard:")
    children = children_of(cwd)
    best = best_accuracy(cwd, children)
    names = [name for _, name, _ in rows]
    assert header[:4] == ["#", "run", "varied", "best/val/accuracy"] and "time" in header
    assert sorted(names) == sorted(children)
    assert [best[n] for n in names] == sorted(best.values(), reverse=True)
    parent = runs_by_name(cwd)[PARENT]
    assert [name for winner, name, _ in rows if winner] == [parent.data.tags["best_run_name"]]
    assert names[0] == parent.data.tags["best_run_name"]
    for _, name, cells in rows:
        params, metrics = children[name].data.params, children[name].data.metrics
        assert f"encoder={params['encoder']}" in cells
        assert f"optimizer.lr={params['optimizer.lr']}" in cells
        assert f"{best[name]:.4f}" in cells and f"{metrics['test/accuracy']:.4f}" in cells
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    logged = Path(client.download_artifacts(parent.info.run_id, "leaderboard.md", str(tmp_path)))
    lines = [line for line in logged.read_text().splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[2] for line in lines[1:]] == names  # the same order


def runs_command(cwd: Path, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``python -m pipeline runs *args`` in ``cwd``, in process: (exit code, stdout, stderr)."""
    from pipeline.__main__ import main

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        main(["runs", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_runs_lists_the_store_best_first_by_any_metric(swept, monkeypatch, capsys):
    cwd, _ = swept
    children = children_of(cwd)
    best = best_accuracy(cwd, children)
    code, out, err = runs_command(cwd, monkeypatch, capsys)  # ./mlflow.db, every experiment
    assert code == 0, err
    header, rows = table(out, "Experiment sentiment (4 runs, sqlite:///mlflow.db):")
    names = [name for _, name, _ in rows]
    assert sorted(names) == sorted(children)  # the sweep's parent is not one of them
    assert [best[n] for n in names] == sorted(best.values(), reverse=True)
    assert rows[0][0] and header[3] == "best/val/accuracy"
    for _, name, cells in rows:  # what differs between the runs: what the sweep varied
        assert f"encoder={children[name].data.params['encoder']}" in cells
    code, out, err = runs_command(cwd, monkeypatch, capsys, "sentiment", "--sort", "val/loss")
    assert code == 0, err
    header, rows = table(out, "):")
    losses = [children[name].data.metrics["best/val/loss"] for _, name, _ in rows]
    assert header[3] == "best/val/loss" and losses == sorted(losses)  # lower is better


def test_runs_compares_two_runs_and_marks_what_differs(swept, monkeypatch, capsys):
    cwd, _ = swept
    children = children_of(cwd)
    lstm = next(r for n, r in children.items() if n.startswith("lstm-h8-sst2-lr=0.01-"))
    gru = next(r for n, r in children.items() if n.startswith("gru-h8-sst2-lr=0.01-"))
    refs = (lstm.info.run_name, gru.info.run_id)  # a name or an id
    code, out, err = runs_command(cwd, monkeypatch, capsys, "--compare", *refs)
    assert code == 0, err
    lines = {line.split()[1 if line.startswith("*") else 0]: line for line in out.splitlines()}
    assert lines["encoder"].startswith("*") and lines["encoder"].split()[-2:] == ["lstm", "gru"]
    assert not lines["optimizer.lr"].startswith("*") and not lines["seed"].startswith("*")
    for key in ("best/val/accuracy", "test/accuracy"):
        values = [run.data.metrics[key] for run in (lstm, gru)]
        assert lines[key].split()[-2:] == [f"{v:.4f}" for v in values]
        assert lines[key].startswith("*") == (values[0] != values[1])


def test_runs_names_an_unknown_experiment_or_run(swept, monkeypatch, capsys):
    cwd, _ = swept
    code, out, err = runs_command(cwd, monkeypatch, capsys, "sentimnet")
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: No experiment 'sentimnet'") and "'sentiment'" in err
    code, out, err = runs_command(cwd, monkeypatch, capsys, "--compare", "nope", "nix")
    assert code == 2 and err.startswith("error: No run 'nope'")
    code, out, err = runs_command(cwd, monkeypatch, capsys, "--sort", "val/acuracy", "sentiment")
    assert code == 2 and "best/val/accuracy" in err  # the closest metric


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
