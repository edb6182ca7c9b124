"""What a run leaves in a real MLflow store besides its epochs: the best epoch's values as
``best/val/*``, ``test/*`` and ``best_epoch`` once at one step, linked to the logged model.

In-process toy runs whose validation accuracy is scripted (epoch 2 of 3 is the best), so the
best epoch and the last one differ."""

from __future__ import annotations

import pytest

from pipeline.run.runner import run
from tests.run.test_resume_checks import VAL_ACCURACY, scripted, toy_run  # noqa: F401
from tests.run.test_runner import in_tmp  # noqa: F401 (a fixture)

BEST_EPOCH = max(VAL_ACCURACY, key=VAL_ACCURACY.get)
LAST_EPOCH = max(VAL_ACCURACY)


def tracked(folder, store: str, *overrides: str):
    return toy_run(
        folder,
        f"tracking.uri={store}",
        "tracking.experiment=results",
        *overrides,
        tracking="mlflow",
    )


def history(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_the_best_epochs_values_are_logged_as_best_val(in_tmp, scripted, mlflow_store):  # noqa: F811
    from mlflow import MlflowClient

    assert BEST_EPOCH != LAST_EPOCH  # what the test is about
    done = run(tracked(in_tmp, mlflow_store, "tracking.log_model=false"))
    client = MlflowClient(mlflow_store)
    metrics = client.get_run(done.run_id).data.metrics
    val_keys = [k for k in metrics if k.startswith("val/")]
    assert {"val/accuracy", "val/loss"} <= set(val_keys)
    for key in val_keys:  # the chosen epoch's value of every val metric, not the last's
        assert metrics[f"best/{key}"] == history(client, done.run_id, key)[BEST_EPOCH]
    assert metrics["best/val/accuracy"] == VAL_ACCURACY[BEST_EPOCH]
    assert metrics["val/accuracy"] == VAL_ACCURACY[LAST_EPOCH]  # per epoch: unchanged
    assert metrics["best_epoch"] == BEST_EPOCH


def test_test_metrics_are_logged_once_and_linked_to_the_model(in_tmp, scripted, mlflow_store):  # noqa: F811
    import mlflow
    from mlflow import MlflowClient

    done = run(tracked(in_tmp, mlflow_store, "tracking.log_model=true"))
    client = MlflowClient(mlflow_store)
    metrics = client.get_run(done.run_id).data.metrics
    results = {
        k: v for k, v in metrics.items() if k.startswith(("test/", "best/")) or k == "best_epoch"
    }
    assert "test/accuracy" in results
    for key in results:  # one point each, at one step shared by every run
        assert list(history(client, done.run_id, key)) == [0], key
    run_info = client.get_run(done.run_id)
    (output,) = run_info.outputs.model_outputs
    linked = {m.key: m.value for m in mlflow.get_logged_model(output.model_id).metrics or []}
    for key in ("test/accuracy", "test/loss", "best/val/accuracy", "best_epoch"):
        assert linked[key] == pytest.approx(metrics[key]), key
