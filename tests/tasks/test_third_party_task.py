"""A third party's own task kind, added exactly as a built-in is: the plugin guide's example
task (plugins/README.md "## Tasks": ``my_tasks/plugin.py`` and ``my_tasks/count.py``, taken
from the guide as written) installed as a throwaway distribution with a ``pipeline.plugins``
entry point. It passes the task kit, trains, evaluates and is tracked from the command line
(tagged with its distribution), resumes exactly after an interrupt, and is listed by
``plugins``; nothing in the core names it (issue 18)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.config_store import ConfigStore

from pipeline import tasks
from pipeline.config.schemas import TrainerConfig
from pipeline.errors import ConfigError
from pipeline.model.checkpoint import Checkpoint
from pipeline.registry import providing
from pipeline.run.runner import run
from pipeline.testing import check_task
from pipeline.training.context import local_context
from pipeline.training.interrupts import TrainingInterrupted
from tests.plugin_packages import make_distribution, pipeline_cli
from tests.run.test_runner import composed, in_tmp  # noqa: F401 (in_tmp: a fixture)
from tests.test_docs import example

DIST, VERSION = "my-tasks", "0.1"
TINY = ["embedding.dim=8", "encoder.hidden_size=8", "trainer.batch_size=16"]


def install(site: Path) -> Path:
    """The guide's example as an installed distribution: the package ``my_tasks`` and an
    entry point whose module imports ``my_tasks.plugin`` (which declares the kind)."""
    package = site / "my_tasks"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(example("# my_tasks/plugin.py"))
    (package / "count.py").write_text(example("# my_tasks/count.py"))
    entry = "import my_tasks.plugin  # noqa: F401 (declares the task kind)\n"
    make_distribution(
        site, DIST, "my_tasks_entry", entry, requires=["seqpipe>=0.1"], version=VERSION
    )
    return site


@pytest.fixture()
def site(tmp_path) -> Path:
    return install(tmp_path / "site")


@pytest.fixture()
def my_tasks(site, monkeypatch) -> None:
    """The plugin loaded in this process as ``load_plugins`` would (its provider named);
    its kind, config nodes and modules are gone after the test."""
    repo = ConfigStore.instance().repo
    monkeypatch.setattr(tasks.kinds, "_entries", dict(tasks.kinds._entries))
    for group in ("task", "data"):
        monkeypatch.setitem(repo, group, dict(repo.get(group, {})))
    monkeypatch.syspath_prepend(str(site))
    with providing(DIST):
        importlib.import_module("my_tasks.plugin")
    yield
    for name in [m for m in sys.modules if m == "my_tasks" or m.startswith("my_tasks.")]:
        del sys.modules[name]


def test_the_guide_task_is_found_by_its_name_and_passes_the_task_kit(my_tasks, tmp_path):
    cfg = composed("task=token_count", "data.train_rows=64", "data.eval_rows=16", *TINY)
    assert tasks.provider(cfg) == DIST
    task = tasks.build(cfg)  # as a run builds it: through the task kind registry
    ctx = local_context(TrainerConfig(batch_size=8), checkpoint_dir=tmp_path)
    ctx = dataclasses.replace(ctx, cfg=cfg)
    task.prepare(ctx)
    report = check_task(task, task.build_model(ctx))
    report.assert_ok()
    assert {"declares", "batches", "resume", "loss", "metrics", "checkpoint"} <= set(report.passed)


def test_the_guide_task_checks_its_own_data_section_first(my_tasks):
    with pytest.raises(ConfigError, match="use data=token_count, not data=imdb"):
        tasks.build(composed("task.type=token_count"))


def test_the_command_line_trains_tracks_and_tags_the_plugin_task(site, tmp_path, mlflow_store):
    from mlflow import MlflowClient

    done = pipeline_cli(
        site,
        "task=token_count",
        "data.train_rows=64",  # a key of the plugin's own data option, checked against it
        "data.eval_rows=16",
        "trainer.max_epochs=2",
        f"tracking.uri={mlflow_store}",
        "tracking.experiment=third_party_task",
        "trainer.progress=none",
        *TINY,
        cwd=tmp_path,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "task token_count on data token_count" in done.stdout
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("third_party_task")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED"
    assert found.data.tags["plugin.task"] == f"{DIST} {VERSION}"
    for name in ("val/loss", "val/mae", "val/accuracy"):
        epochs = client.get_metric_history(found.info.run_id, name)
        assert sorted(m.step for m in epochs) == [1, 2], name
    assert {"test/loss", "test/mae", "test/accuracy"} <= set(found.data.metrics)
    (report,) = tmp_path.glob("outputs/*/*/count_errors.json")  # the task's finish()
    assert set(json.loads(report.read_text())["test"]) == {"test/loss", "test/mae", "test/accuracy"}
    logged = client.list_artifacts(found.info.run_id, "reports")
    assert [Path(a.path).name for a in logged] == ["count_errors.json"]
    best = Checkpoint.load(next(tmp_path.glob("outputs/*/*/best.pt")))
    assert best.kind == "token_count"


def test_plugins_lists_and_checks_the_task_kind_with_its_distribution(site, tmp_path):
    listed = pipeline_cli(site, "plugins", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    kinds = listed.stdout.split("task kinds:\n", 1)[1].splitlines()
    (row,) = [line for line in kinds if line.split()[:1] == ["token_count"]]
    assert row.split()[1:] == ["my_tasks.count.TokenCount", f"[{DIST}", f"{VERSION}]"]
    checked = pipeline_cli(site, "plugins", "--check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr
    assert "checked: no problems" in checked.stdout


def interrupt_at(monkeypatch, count: type, epoch: int, step: int) -> None:
    """A real SIGINT, sent to this process while step ``step`` of ``epoch`` trains (the task
    class ``count``'s ``train_batches`` and ``loss`` are patched to count the steps)."""
    real_batches, real_loss = count.train_batches, count.loss

    def train_batches(self, at_epoch, start):
        self.interrupt_epoch, self.interrupt_step = at_epoch, start
        return real_batches(self, at_epoch, start)

    def loss(self, model, batch, state):
        self.interrupt_step += 1
        if (self.interrupt_epoch, self.interrupt_step) == (epoch, step):
            os.kill(os.getpid(), signal.SIGINT)  # the loop stops after this step
        return real_loss(self, model, batch, state)

    monkeypatch.setattr(count, "train_batches", train_batches)
    monkeypatch.setattr(count, "loss", loss)


def test_an_interrupted_plugin_task_resumes_exactly(my_tasks, in_tmp, monkeypatch):  # noqa: F811
    args = ["task=token_count", "data.train_rows=128", "data.eval_rows=32", *TINY]
    args += ["trainer.max_epochs=2", "embedding.dropout=0.3"]  # dropout: its draws resume too
    straight = in_tmp / "straight"
    straight.mkdir()
    monkeypatch.chdir(straight)
    expected = run(composed(*args))

    monkeypatch.chdir(in_tmp)
    with monkeypatch.context() as patched:
        interrupt_at(patched, sys.modules["my_tasks.count"].TokenCount, epoch=2, step=5)
        with pytest.raises(TrainingInterrupted):
            run(composed(*args))
    last = Checkpoint.load(in_tmp / "outputs" / "manual" / "last.pt")
    assert (last.resume["epoch"], last.resume["step"]) == (2, 5)
    resumed = run(composed(*args, "trainer.resume=auto"))

    assert resumed.metrics == expected.metrics  # test metrics of the same best weights
    assert history(resumed) == history(expected)  # every epoch's metrics, exactly


def history(result) -> list[dict[str, float]]:
    """The run's per-epoch metrics, but the ones that time the epochs."""
    saved = torch.load(result.best_checkpoint, weights_only=True)["history"]
    timed = ("train/epoch_seconds", "train/samples_per_s")
    return [{k: v for k, v in epoch.items() if k not in timed} for epoch in saved]
