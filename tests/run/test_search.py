"""A hyper-parameter search (``hydra/sweeper=search``, Optuna) searches the right way: its
direction follows ``trainer.monitor_mode``, so the best it reports is the best child's.

A real 3-trial search through ``python -m pipeline -m``, its children recorded in a real
SQLite store; the sweeper's ``optimization_results.yaml`` is compared with what the
children logged.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hydra import compose, initialize_config_module

from pipeline.run.recording import search_direction
from pipeline.run.sweep import SweepInfo, short_value, trial_suffix
from tests.cli import cli_env, run_pipeline
from tests.run.test_sweep import TINY

needs_optuna = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
    reason="hydra-optuna-sweeper is not installed (pip install -e '.[dev]')",
)


def test_the_direction_follows_the_monitor_mode():
    assert search_direction("max") == "maximize"
    assert search_direction("min") == "minimize"
    with pytest.raises(ValueError, match="max or min"):
        search_direction("up")


@needs_optuna
@pytest.mark.parametrize(
    "overrides, direction",
    [
        ([], "maximize"),  # sentiment: val/accuracy
        (["task=lm"], "minimize"),  # val/perplexity
        (["trainer.monitor=val/loss", "trainer.monitor_mode=min"], "minimize"),
    ],
)
def test_the_search_preset_resolves_its_direction_from_the_task(overrides, direction):
    import pipeline.run  # noqa: F401  (registers the config's resolvers, as the app does)

    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose("config", [*overrides, "hydra/sweeper=search"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == direction
    assert sweeper.storage is None  # in memory: no SQLite storage
    assert sweeper.sampler.seed == cfg.seed


@needs_optuna
def test_a_search_against_the_monitor_mode_is_refused_before_it_starts(tmp_path):
    """Optuna's own default (minimize) on val/accuracy: one error line, nothing written."""
    search = ["hydra/sweeper=optuna", "optimizer.lr=interval(1e-4,0.3)"]
    done = run_pipeline("-m", *TINY, *search, cwd=tmp_path, env=cli_env())
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: hydra.sweeper.direction is minimize, but trainer.")
    assert "hydra/sweeper=search" in done.stderr and "direction=maximize" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no sweep folder, no MLflow store


def test_names_show_sampled_values_short_and_the_trial_number(monkeypatch):
    assert short_value("0.03751655787285152") == "0.03752"
    as_written = ["0.01", "1e-3", "128", "gru"]
    assert [short_value(v) for v in as_written] == as_written
    from hydra.core.hydra_config import HydraConfig

    job = SimpleNamespace(job=SimpleNamespace(num=7))  # Hydra's job 7 of the sweep
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: job))
    search = SweepInfo("p", "0", "sqlite://", ["optimizer.lr"], search=True)
    assert trial_suffix(search) == "-trial7"
    assert trial_suffix(SweepInfo("p", "0", "sqlite://", ["encoder"])) == ""  # a plain sweep


@needs_optuna
def test_a_search_reports_the_best_child_by_the_monitor_mode(tmp_path, data_dir, hf_cache):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = ["hydra/sweeper=search", "hydra.sweeper.n_trials=3", "optimizer.lr=interval(1e-4,0.3)"]
    env = cli_env(data_dir, hf_cache)
    done = run_pipeline("-m", *TINY, f"tracking.uri={uri}", *search, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sentiment").experiment_id
    runs = {r.info.run_name: r for r in client.search_runs([experiment])}
    parent = next(r for n, r in runs.items() if n.startswith("sweep-"))
    children = {n: r for n, r in runs.items() if r is not parent}
    best_of = {  # each child's best epoch's val/accuracy, from what it logged
        n: max(m.value for m in client.get_metric_history(r.info.run_id, "val/accuracy"))
        for n, r in children.items()
    }
    assert len(children) == 3 and len(set(best_of.values())) > 1  # max and min differ
    sweep_dir = Path(parent.data.tags["sweep_dir"])
    reported = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    best = max(best_of.values())
    winners = {n for n, value in best_of.items() if value == best}  # ties: any of them
    assert reported["best_value"] == pytest.approx(best, rel=1e-12)
    lrs = {float(children[n].data.params["optimizer.lr"]) for n in winners}
    assert reported["best_params"]["optimizer.lr"] in lrs
    assert parent.data.tags["best_run_name"] in winners  # the leaderboard agrees
    trials = {}
    for name, child in children.items():  # ...-lr=0.02154-trial1-3f9a: job 1, Optuna's trial 1
        lr = child.data.params["optimizer.lr"]  # exact; the name shows 4 digits
        found = re.fullmatch(rf".*-lr={re.escape(short_value(lr))}-trial(\d+)-[0-9a-f]{{4}}", name)
        assert found, name
        trials[int(found[1])] = float(lr)
    assert sorted(trials) == [0, 1, 2]
    for number, lr in trials.items():  # the child named trial<n> ran job <n>'s overrides
        overrides = yaml.safe_load((sweep_dir / str(number) / ".hydra/overrides.yaml").read_text())
        assert [float(o.split("=")[1]) for o in overrides if o.startswith("optimizer.lr=")] == [lr]
