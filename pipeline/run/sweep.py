"""A Hydra multirun recorded as one MLflow parent run with a nested child run per job.

Hydra calls :class:`MlflowSweepCallback` (``hydra.callbacks`` in ``conf/config.yaml``) around
a multirun. ``on_multirun_start`` creates the parent run, named after what the sweep varies,
and writes its id to ``<sweep dir>/mlflow_sweep.json``. Each job, in this process or in a
launcher's worker process (joblib, submitit, ray), reads that file through
:func:`current_sweep` and starts its own run tagged ``mlflow.parentRunId``, so the UI nests
it under the parent. ``on_multirun_end`` finds the best child by the monitored metric, logs
it on the parent with each child's best and a table of every child (by their best epochs:
:mod:`pipeline.run.sweep_best`), prints a leaderboard of the children, best first, and logs it
on the parent as ``leaderboard.md`` (:mod:`pipeline.reporting.leaderboard`), and closes the
parent. A sweep that dies
half-way closes its parent as FAILED when the process exits.

The parent is written through ``MlflowClient`` (never ``mlflow.start_run``), so no run is
"active" in the launching process while the jobs start their own.
"""

from __future__ import annotations

import atexit
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.run.sweep_best import child_best, parent_metrics, summary_rows

SWEEP_FILE = "mlflow_sweep.json"
PARENT_TAG = "pipeline.run.sweep"
#: Overrides whose value already shows in a run's name (``lstm-h128-bi-l2-sst2``).
NAMED_KEYS = {
    "encoder",
    "encoder.name",
    "encoder.hidden_size",
    "encoder.bidirectional",
    "encoder.num_layers",
    "data",
    "data.name",
}


@dataclass
class SweepInfo:
    """What a job needs to know about the sweep it belongs to."""

    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    swept: list[str] = field(default_factory=list)  # keys that vary, e.g. encoder, optimizer.lr
    search: bool = False  # a sweeper that picks the values (Optuna): children carry -trial<n>


def sweep_overrides(overrides: list[str], sweeper_params: dict[str, Any] | None) -> dict[str, str]:
    """The swept keys and their value lists: ``encoder=lstm,gru`` -> {"encoder": "lstm,gru"}.

    Command-line sweeps (``a,b``, ``range(...)``, ``choice(...)``, ``interval(...)``) and a
    sweeper's own ``hydra.sweeper.params`` (Optuna) both count.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            swept[override.get_key_element()] = override.input_line.split("=", 1)[1]
    for key, value in (sweeper_params or {}).items():
        swept.setdefault(str(key), str(value))
    return swept


def fixed_overrides(overrides: list[str]) -> dict[str, str]:
    """The overrides every job shares (``task=sentiment``, ``data=sst2``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return {
        o.get_key_element(): o.input_line.split("=", 1)[1]
        for o in OverridesParser.create().parse_overrides(overrides)
        if not o.is_sweep_override() and "=" in o.input_line
    }


def parent_run_name(swept: dict[str, str]) -> str:
    """``sweep-encoder=lstm,gru,transformer``: the sweep is named after what it varies."""
    body = " ".join(f"{key}={values}" for key, values in swept.items()) or "multirun"
    return f"sweep-{body}"[:250]


def short_value(value: str) -> str:
    """A swept value as a name shows it: a sampled float to 4 significant digits
    (``0.03751655787285152`` -> ``0.03752``), any other value as written (``1e-3``, ``gru``)."""
    try:
        number = float(value)
    except ValueError:
        return value
    short = f"{number:.4g}"
    return short if float(short) != number else value


def child_name_suffix(job_overrides: list[str], swept: list[str]) -> str:
    """The swept values a job's run name does not show yet: ``-lr=0.001``."""
    parts = []
    for item in job_overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key in swept and key not in NAMED_KEYS:
            parts.append(f"{key.split('.')[-1]}={short_value(value)}")
    return "".join(f"-{part}" for part in parts)


def trial_suffix(sweep: SweepInfo) -> str:
    """``-trial3`` in a search (Hydra's job number: Optuna's trial number, in-memory study),
    nothing in a plain sweep, whose values already tell its children apart."""
    if not sweep.search:
        return ""
    from hydra.core.hydra_config import HydraConfig

    return f"-trial{HydraConfig.get().job.num}"


def current_sweep() -> SweepInfo | None:
    """The sweep this Hydra job belongs to, or None outside a tracked multirun."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except ValueError:  # not inside a Hydra job
        return None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    path = Path(hydra_cfg.sweep.dir) / SWEEP_FILE
    if not path.is_file():
        return None
    return SweepInfo(**json.loads(path.read_text()))


def best_child(runs: list[Any], scores: dict[str, float], mode: str) -> Any | None:
    """The run with the best score (``scores``: run id -> its best monitored value)."""
    scored = [r for r in runs if r.info.run_id in scores]
    if not scored:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return max(scored, key=lambda r: sign * scores[r.info.run_id])


class MlflowSweepCallback(Callback):
    """Hydra callback: one MLflow parent run per multirun (see the module docstring)."""

    def __init__(self) -> None:
        self.client: Any = None
        self.info: SweepInfo | None = None
        self.closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.tracking.name != "mlflow":
            return
        from omegaconf import OmegaConf

        from pipeline.errors import PipelineError

        overrides = list(config.hydra.overrides.task)
        node = config.hydra.sweeper.get("params")
        params = OmegaConf.to_container(node, resolve=False) if node is not None else {}
        swept = sweep_overrides(overrides, params)
        experiment = config.tracking.experiment or config.task.name
        try:
            self._start(config, experiment, swept, fixed_overrides(overrides))
        except PipelineError as exc:
            print(f"{exc.label}: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        atexit.register(self._close_if_open)

    def _start(
        self, config: DictConfig, experiment: str, swept: dict[str, str], fixed: dict[str, str]
    ) -> None:
        from mlflow.entities import Param

        from pipeline.tracking.tracker import connect_client

        self.client, uri = connect_client(config.tracking.uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        run = self.client.create_run(
            experiment_id,
            run_name=parent_run_name(swept),
            tags={
                PARENT_TAG: "parent",
                "task": str(config.task.name),
                "data": str(config.data.name),
                "sweeper": str(config.hydra.sweeper.get("_target_", "")),
                "launcher": str(config.hydra.launcher.get("_target_", "")),
                "sweep_dir": str(sweep_dir),
            },
        )
        params = [Param(f"sweep.{k}", str(v)[:6000]) for k, v in swept.items()]
        params += [Param(f"fixed.{k}", str(v)[:6000]) for k, v in fixed.items()]
        if params:
            self.client.log_batch(run.info.run_id, params=params[:100])
        search = not str(config.hydra.sweeper.get("_target_", "")).endswith(".BasicSweeper")
        self.info = SweepInfo(run.info.run_id, experiment_id, uri, list(swept), search)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(asdict(self.info)))
        print(f"mlflow sweep: parent run {run.info.run_id} ({parent_run_name(swept)})", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.info is None or self.closed:
            return
        client, info = self.client, self.info
        children = client.search_runs(
            [info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{info.parent_run_id}'",
            max_results=10000,
        )
        monitor, mode = str(config.trainer.monitor), str(config.trainer.monitor_mode)
        finished = [r for r in children if r.info.status == "FINISHED"]
        best_of = {r.info.run_id: child_best(client, r, monitor, mode) for r in children}
        scores = {i: v[monitor] for i, v in best_of.items() if monitor in v}
        best = best_child(finished, scores, mode)
        self._log_metrics(parent_metrics(finished, best_of, best, monitor))
        if best is not None:
            client.set_tag(info.parent_run_id, "best_run_id", best.info.run_id)
            client.set_tag(info.parent_run_id, "best_run_name", best.info.run_name)
        summary = {"monitor": monitor, "runs": summary_rows(children, best_of)}
        client.log_dict(info.parent_run_id, summary, "sweep_summary.json")
        self._leaderboard(children, scores, monitor, mode)
        status = "FINISHED" if children and len(finished) == len(children) else "FAILED"
        client.set_terminated(info.parent_run_id, status)
        self.closed = True
        line = f"mlflow sweep: {len(finished)}/{len(children)} runs finished"
        if best is not None:
            line += f"; best {monitor} {scores[best.info.run_id]:.4f}: {best.info.run_name}"
        print(line, flush=True)

    def _leaderboard(
        self, children: list[Any], scores: dict[str, float], monitor: str, mode: str
    ) -> None:
        """Print the children best first, and log the same table on the parent."""
        from pipeline.reporting.leaderboard import markdown_table, sweep_rows, text_table

        rows = sweep_rows(children, scores, self.info.swept, mode)
        name = f"best/{monitor}"
        print(f"\nSweep leaderboard:\n{text_table(rows, name, mode)}\n", flush=True)
        table = markdown_table(rows, name, mode)
        self.client.log_text(self.info.parent_run_id, table + "\n", "leaderboard.md")

    def _log_metrics(self, metrics: dict[str, float]) -> None:
        """Log ``metrics`` on the parent at the results step, in batches MLflow accepts."""
        import time

        from mlflow.entities import Metric

        from pipeline.tracking.tracker import RESULT_STEP

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, RESULT_STEP) for k, v in sorted(metrics.items())]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.info.parent_run_id, metrics=items[start : start + 1000])

    def _close_if_open(self) -> None:
        """At exit: a sweep that never reached on_multirun_end failed part-way."""
        if self.info is None or self.closed:
            return
        try:
            self.client.set_tag(self.info.parent_run_id, "error", "the sweep stopped early")
            self.client.set_terminated(self.info.parent_run_id, "FAILED")
        except Exception as exc:  # the store itself may be what failed
            print(f"warning: could not close the sweep's MLflow run: {exc}", file=sys.stderr)
        self.closed = True
