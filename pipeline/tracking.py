"""Run tracking: MLflow by default (its own default store, ``sqlite:///mlflow.db``), or none.

MLflow is imported only when a run is tracked (it takes over a second to import).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.config import TrackingConfig
from pipeline.errors import PipelineError

MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value's length (older servers: 500)
PARAMS_PER_BATCH = 100


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"encoder": {"hidden_size": 128}} -> {"encoder.hidden_size": 128}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Tracker:
    """Does nothing: ``tracking=none``. The MLflow tracker overrides every method."""

    run_id: str | None = None

    def start(self, experiment: str, run_name: str, tags: dict[str, str]) -> None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_model(self, model: Any, **kwargs: Any) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def end(self, status: str = "FINISHED", error: str | None = None) -> None: ...

    def describe(self) -> str:
        return "tracking off (tracking=none)"


class MlflowTracker(Tracker):
    """Logs to MLflow: params, per-epoch metrics, artifacts and the model."""

    def __init__(self, config: TrackingConfig) -> None:
        import mlflow

        self.mlflow = mlflow
        self.config = config
        if config.uri:
            mlflow.set_tracking_uri(config.uri)
        self.uri = mlflow.get_tracking_uri()
        self.experiment_id: str | None = None

    def start(self, experiment: str, run_name: str, tags: dict[str, str]) -> None:
        try:
            found = self.mlflow.set_experiment(experiment)
            run = self.mlflow.start_run(run_name=run_name, tags=tags)
        except Exception as exc:
            raise PipelineError(
                f"Cannot reach the MLflow tracking store at {self.uri} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). Start the server or "
                "fix tracking.uri, or run without tracking: tracking=none."
            ) from None
        self.experiment_id = found.experiment_id
        self.run_id = run.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        items = [(k, str(v)[:MAX_PARAM_VALUE]) for k, v in sorted(params.items())]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.mlflow.log_params(dict(items[start : start + PARAMS_PER_BATCH]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.mlflow.log_metrics(metrics, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        else:
            self.mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_model(self, model: Any, **kwargs: Any) -> None:
        self.mlflow.pytorch.log_model(model, **kwargs)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.mlflow.set_tags(tags)

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        if self.mlflow.active_run() is None:
            return
        if error:
            try:
                self.mlflow.set_tag("error", error[:5000])
            except Exception as exc:  # the store may be the very thing that failed
                print(f"warning: could not record the error in MLflow: {exc}", file=sys.stderr)
        self.mlflow.end_run(status=status)

    def describe(self) -> str:
        return self.uri

    def ui_command(self) -> str:
        if self.uri.startswith("http"):
            return f"open {self.uri}/#/experiments/{self.experiment_id}/runs"
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///") :])
            if db.resolve() == (Path.cwd() / "mlflow.db").resolve():
                return "mlflow ui"
        return f"mlflow ui --backend-store-uri {self.uri}"


def make_tracker(config: TrackingConfig) -> Tracker:
    return MlflowTracker(config) if config.name == "mlflow" else Tracker()
