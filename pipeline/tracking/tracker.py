"""Run tracking: MLflow by default (its own default store, ``sqlite:///mlflow.db``), or none.

MLflow is imported only when a run is tracked (it takes over a second to import).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.config.schemas import TrackingConfig
from pipeline.errors import PipelineError
from pipeline.tracking.extras import DatasetRef, dataset_input, system_metrics_available
from pipeline.tracking.store import connect_client, server_answers, store_fault
from pipeline.tracking.store import reason as _reason

MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value's length (older servers: 500)
PARAMS_PER_BATCH = 100
#: The one step of a run's results (``test/*``, ``best/val/*``, ``best_epoch``): epochs are
#: steps 1, 2, ..., and a model logged at this step is linked to every metric logged at it
#: (MLflow 3's ``log_model(step=...)``), so its page shows the test metrics.
RESULT_STEP = 0


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
    run_name: str | None = None  # the run's name in the store (a resumed run keeps its own)

    def start(
        self,
        experiment: str,
        run_name: str,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        run_id: str | None = None,
    ) -> None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_dataset(self, dataset: DatasetRef) -> None:
        """Record a data set the run used (its ``context``: train, validation, test)."""

    def log_model_with(self, log: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Log a model by calling ``log(mlflow, *args, **kwargs)``: the caller knows what the
        model is and how to log it; the tracker only knows where (no-op without a store)."""

    def set_tags(self, tags: dict[str, str]) -> None: ...
    def end(self, status: str = "FINISHED", error: str | None = None) -> None: ...

    def describe(self) -> str:
        return "tracking off (tracking=none)"


class MlflowTracker(Tracker):
    """Logs to MLflow: params, per-epoch metrics, artifacts and the model.

    Every call that reaches the store goes through :meth:`_call`. If the store stops
    answering mid-run (a server that went down), training goes on: the calls are queued,
    a message says so once, and they are replayed in order as soon as the store answers
    again (checked at most every ``tracking.retry_seconds``; at the end of the run it waits up
    to ``tracking.final_wait_seconds`` for the store). Metrics, params and tags are also
    appended to a local journal (``tracking.jsonl`` in the run's output directory), so
    nothing is lost even if the store never comes back.
    """

    def __init__(self, config: TrackingConfig, journal: Path | None = None) -> None:
        self.client, self.uri = connect_client(config.uri)
        import mlflow

        self.mlflow = mlflow
        self.config = config
        self.experiment_id: str | None = None
        self.journal = journal
        self.pending: list[tuple[str, Callable[[], Any]]] = []
        self.offline_since: float | None = None
        self.last_try = 0.0

    def start(
        self,
        experiment: str,
        run_name: str,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Start a run, or go on with run ``run_id`` (a resumed training) where it exists."""
        if parent_run_id:
            tags = {**tags, "mlflow.parentRunId": parent_run_id}
        try:
            found = self.mlflow.set_experiment(experiment)
            run = self._resume(run_id) if run_id else None
            if run is None:
                run = self.mlflow.start_run(
                    run_name=run_name, tags=tags, log_system_metrics=system_metrics_available()
                )
        except Exception as exc:
            raise store_fault(exc, self.uri) or PipelineError(
                f"Cannot reach the MLflow tracking store at {self.uri} ({_reason(exc)}). Start "
                "the server or fix tracking.uri, or run without tracking: tracking=none."
            ) from None
        self.experiment_id = found.experiment_id
        self.run_id, self.run_name = run.info.run_id, run.info.run_name
        self._journal({"event": "start", "run_id": self.run_id, "run_name": self.run_name})

    def _resume(self, run_id: str) -> Any:
        """The run ``run_id`` set RUNNING again, or None (with a note) if the store lacks it."""
        try:
            self.client.get_run(run_id)
        except Exception:
            print(
                f"resume: run {run_id} is not in the MLflow store at {self.uri}; "
                "recording a new run",
                flush=True,
            )
            return None
        return self.mlflow.start_run(run_id=run_id, log_system_metrics=system_metrics_available())

    def log_params(self, params: dict[str, Any]) -> None:
        items = [(k, str(v)[:MAX_PARAM_VALUE]) for k, v in sorted(params.items())]
        self._journal({"event": "params", "params": dict(items)})
        for start in range(0, len(items), PARAMS_PER_BATCH):
            batch = dict(items[start : start + PARAMS_PER_BATCH])
            self._call("params", lambda b=batch: self._log_batch(params=b))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        values = {k: float(v) for k, v in metrics.items()}
        now = int(time.time() * 1000)  # when it was measured, even if sent later
        self._journal({"event": "metrics", "step": step, "metrics": values})
        self._call("metrics", lambda: self._log_batch(metrics=values, step=step, timestamp=now))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._call(
                f"artifacts {path}",
                lambda: self.client.log_artifacts(self.run_id, str(path), artifact_path),
            )
        else:
            self._call(
                f"artifact {path}",
                lambda: self.client.log_artifact(self.run_id, str(path), artifact_path),
            )

    def log_dataset(self, dataset: DatasetRef) -> None:
        found = dataset_input(dataset)
        self._call(f"data set {dataset.name}", lambda: self.client.log_inputs(self.run_id, [found]))

    def log_model_with(self, log: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._call("model", lambda: log(self.mlflow, *args, **kwargs))

    def set_tags(self, tags: dict[str, str]) -> None:
        self._journal({"event": "tags", "tags": dict(tags)})
        self._call("tags", lambda: self._log_batch(tags=tags))

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        if self.mlflow.active_run() is None:
            return
        self._journal({"event": "end", "status": status, "error": error})
        if error:
            self._call("error tag", lambda: self._log_batch(tags={"error": error[:5000]}))
        if self.offline_since is not None:
            self._wait_for_store(self.config.final_wait_seconds)
        self._call("end", lambda: self.client.set_terminated(self.run_id, status))
        try:  # forget the active run here (it also tells the store, a second time)
            self.mlflow.end_run(status=status)
        except Exception:
            pass
        if self.offline_since is not None:
            print(
                f"warning: the MLflow store at {self.uri} still does not answer; "
                f"{len(self.pending)} tracking calls could not be sent and run {self.run_id} "
                f"stays RUNNING there. Its params, metrics and tags are in {self.journal}; "
                "plots, checkpoints and the tokenizer are beside it.",
                file=sys.stderr,
                flush=True,
            )

    def _log_batch(
        self,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        step: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """One call to the store, for this run by id (safe to replay after an outage)."""
        import time

        from mlflow.entities import Metric, Param, RunTag

        now = timestamp or int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, v, now, step or 0) for k, v in (metrics or {}).items()],
            params=[Param(k, v) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )

    def _call(self, what: str, send: Callable[[], Any]) -> None:
        """Send ``send`` to the store now, or queue it while the store is down."""
        if self.offline_since is not None and not self._reconnect():
            self.pending.append((what, send))
            return
        try:
            send()
        except Exception as exc:
            self.pending.append((what, send))
            self._go_offline(exc, what)

    def _go_offline(self, exc: Exception, what: str) -> None:
        import time

        self.offline_since = self.last_try = time.monotonic()
        print(
            f"warning: the MLflow store at {self.uri} stopped answering ({_reason(exc)}, while "
            f"logging {what}). Training goes on; tracking calls are queued and will be sent "
            f"when it answers again, and params and metrics are kept in {self.journal}.",
            file=sys.stderr,
            flush=True,
        )

    def _reconnect(self) -> bool:
        """Replay the queued calls if the store answers again (tried every few seconds)."""
        import time

        if time.monotonic() - self.last_try < self.config.retry_seconds:
            return False
        self.last_try = time.monotonic()
        if self.uri.startswith(("http://", "https://")) and not server_answers(self.uri, 3.0):
            return False
        while self.pending:
            what, send = self.pending[0]
            try:
                send()
            except Exception:
                return False
            self.pending.pop(0)
        print(f"mlflow: the store at {self.uri} answers again; queued calls sent.", flush=True)
        self.offline_since = None
        return True

    def _wait_for_store(self, seconds: float) -> None:
        """At the end of a run: give a store that went down a chance to come back."""
        import time

        print(
            f"mlflow: waiting up to {seconds:g}s for the store at {self.uri} to answer again "
            "(tracking.final_wait_seconds)",
            file=sys.stderr,
            flush=True,
        )
        deadline = time.monotonic() + seconds
        while True:
            self.last_try = 0.0
            if self._reconnect() or time.monotonic() >= deadline:
                return
            time.sleep(min(2.0, max(deadline - time.monotonic(), 0.0)))

    def _journal(self, record: dict[str, Any]) -> None:
        if self.journal is None:
            return
        import json
        import time

        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("a") as handle:
            handle.write(json.dumps({"time": time.time(), **record}) + "\n")

    def describe(self) -> str:
        return self.uri

    def ui_command(self) -> str:
        """Where to see this run: its page on a server (``http(s)://``), else ``mlflow ui``."""
        if self.uri.startswith("http"):
            run = f"/{self.run_id}" if self.run_id else ""
            return f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs{run}"
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///") :])
            if db.resolve() == (Path.cwd() / "mlflow.db").resolve():
                return "mlflow ui"
        return f"mlflow ui --backend-store-uri {self.uri}"


def make_tracker(config: TrackingConfig, journal: Path | None = None) -> Tracker:
    """The tracker ``config`` names; ``journal`` keeps a local copy of what MLflow gets."""
    return MlflowTracker(config, journal) if config.name == "mlflow" else Tracker()
