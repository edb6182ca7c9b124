"""What a tracked run says about itself in a real MLflow store: params a person compares (group
choices, what differs from the defaults, the parameter count), a unique readable name, a
model named after the run, a description, its data sets as inputs, and system metrics where
``psutil`` is importable. In-process toy runs (``tests/run/test_resume_checks.toy_run``)."""

from __future__ import annotations

import re
import sys
import types
from importlib.machinery import ModuleSpec

from hydra import compose, initialize_config_module

from pipeline.config.schemas import NO_DEFAULT, schema_default
from pipeline.model.checkpoint import Checkpoint
from pipeline.run.params import CHOICE_GROUPS, run_params
from pipeline.run.recording import run_name
from pipeline.run.runner import run
from tests.run.test_resume_checks import toy_run
from tests.run.test_runner import in_tmp  # noqa: F401 (a fixture)

MAX_PARAMS = 30  # the bound, on the defaults


def tracked(folder, store: str, *overrides: str):
    return toy_run(
        folder,
        f"tracking.uri={store}",
        "tracking.experiment=identity",
        "trainer.max_epochs=1",
        *overrides,
        tracking="mlflow",
    )


def stored(store: str, run_id: str):
    from mlflow import MlflowClient

    client = MlflowClient(store)
    return client, client.get_run(run_id)


def test_defaults_give_few_params_and_none_is_none():
    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose("config", ["task=sentiment"])
    params = run_params(cfg)
    assert len(params) + 1 <= MAX_PARAMS  # + n_params, once the model is built
    assert all(value is not None for value in params.values())
    assert {params[group] for group in CHOICE_GROUPS} == {str(cfg[g].name) for g in CHOICE_GROUPS}


def test_params_are_group_choices_what_differs_and_the_parameter_count(in_tmp, mlflow_store):  # noqa: F811
    cfg = tracked(in_tmp, mlflow_store, "tracking.log_model=false", "optimizer=sgd")
    done = run(cfg)
    _, found = stored(mlflow_store, done.run_id)
    params = found.data.params
    assert len(params) <= MAX_PARAMS and "None" not in params.values()
    for group in CHOICE_GROUPS:  # each group's choice, named by the group
        assert params[group] == str(cfg[group].name), group
    assert params["optimizer"] == "sgd"
    for key, value in params.items():  # every other param differs from its default
        if "." in key and not key.startswith("data."):
            default = schema_default(key, cfg)
            assert default is NO_DEFAULT or str(default) != value, key
    assert params["encoder.hidden_size"] == "16"  # set by the toy config (default 128)
    assert params["optimizer.lr"] == "0.01"  # differs from sgd's own default (0.1)
    assert "optimizer.momentum" not in params  # sgd's own default (0.9), not adamw's (0.0)
    assert params["trainer.patience"] == "4"  # suggested by the toy (small) data, after start
    assert not [k for k in params if k.startswith(("tracking.", "data.hub", "data.cache"))]
    assert "trainer.progress" not in params  # how the run is shown, not what it trains
    assert params["n_params"] == found.data.tags["n_params"] and int(params["n_params"]) > 0
    client_artifacts = {
        a.path for a in stored(mlflow_store, done.run_id)[0].list_artifacts(done.run_id)
    }
    assert "config.yaml" in client_artifacts  # the whole config stays an artifact


def test_runs_of_one_config_get_unique_names_and_their_models_are_named_after_them(
    in_tmp,  # noqa: F811
    mlflow_store,
):
    from pipeline.inference.stored import open_stored_model

    cfg = tracked(in_tmp, mlflow_store, "tracking.log_model=true")
    first, second = run(cfg), run(cfg)
    client, one = stored(mlflow_store, first.run_id)
    _, two = stored(mlflow_store, second.run_id)
    names = [one.info.run_name, two.info.run_name]
    assert names[0] != names[1]
    for name in names:  # readable, then 4 hex characters
        assert re.fullmatch(re.escape(run_name(cfg)) + r"-[0-9a-f]{4}", name), name
    (output,) = one.outputs.model_outputs
    assert client.get_logged_model(output.model_id).name == one.info.run_name
    with open_stored_model(first.run_id, mlflow_store, "") as model:  # a run id still finds it
        assert model.uri == f"runs:/{first.run_id}/{one.info.run_name}"


def test_description_says_task_data_model_and_what_differs(in_tmp, mlflow_store):  # noqa: F811
    cfg = tracked(in_tmp, mlflow_store, "tracking.log_model=false")
    done = run(cfg)
    _, found = stored(mlflow_store, done.run_id)
    note = found.data.tags["mlflow.note.content"]
    assert str(cfg.task.name) in note and str(cfg.data.name) in note
    assert f"{cfg.encoder.name} encoder" in note
    assert "encoder.hidden_size=16" in note


def test_the_data_sets_are_logged_as_inputs_with_their_digests(in_tmp, mlflow_store):  # noqa: F811
    done = run(tracked(in_tmp, mlflow_store, "tracking.log_model=false"))
    _, found = stored(mlflow_store, done.run_id)
    inputs = {
        {t.key: t.value for t in i.tags}["mlflow.data.context"]: i.dataset
        for i in found.inputs.dataset_inputs
    }
    recorded = Checkpoint.load(done.best_checkpoint).data  # the fingerprint resume checks
    assert set(inputs) == set(recorded["splits"]) == {"train", "validation", "test"}
    for split, dataset in inputs.items():
        assert dataset.name == "files"
        assert dataset.digest == recorded["splits"][split]["sha256"][:12]
        assert dataset.source_type == "local" and "train.csv" in dataset.source
        assert f'"rows": {recorded["splits"][split]["rows"]}' in dataset.profile


def fake_psutil() -> types.ModuleType:
    """Stands for psutil (not a dependency): what MLflow's CPU, disk and network monitors read."""
    module = types.ModuleType("psutil")
    module.__spec__ = ModuleSpec("psutil", None)
    reading = types.SimpleNamespace
    module.cpu_percent = lambda *a, **k: 12.5
    module.virtual_memory = lambda: reading(used=2e9, total=8e9)
    module.disk_usage = lambda path: reading(percent=50.0, used=1e9, free=1e9)
    module.net_io_counters = lambda: reading(bytes_recv=1, bytes_sent=1)
    return module


def test_system_metrics_are_logged_where_psutil_is_importable(in_tmp, mlflow_store, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "psutil", fake_psutil())
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    done = run(tracked(in_tmp, mlflow_store, "tracking.log_model=false"))
    _, found = stored(mlflow_store, done.run_id)
    assert found.data.metrics["system/cpu_utilization_percentage"] == 12.5


def test_without_psutil_system_metrics_stay_off_and_the_run_goes_on(
    in_tmp,  # noqa: F811
    mlflow_store,
    monkeypatch,
):
    monkeypatch.setitem(sys.modules, "psutil", None)  # not importable, whatever is installed
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")  # MLflow would refuse
    done = run(tracked(in_tmp, mlflow_store, "tracking.log_model=false"))
    _, found = stored(mlflow_store, done.run_id)
    assert found.info.status == "FINISHED"
    assert not [k for k in found.data.metrics if k.startswith("system/")]
