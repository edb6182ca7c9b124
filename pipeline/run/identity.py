"""How a tracked run presents itself to a person comparing runs: a unique, readable name, the
command that started it (MLflow's Source), a one-paragraph description, the params that
matter (:mod:`pipeline.run.params`) and the data it was trained on as run inputs."""

from __future__ import annotations

import json
import secrets
import shlex
from typing import Any

from omegaconf import DictConfig

from pipeline import __version__
from pipeline.config.groups import override_keys
from pipeline.run.params import run_params
from pipeline.run.recording import git_commit, run_name
from pipeline.tracking.extras import DatasetRef

#: MLflow's tags for a run's Source column and its description (the run page's notes).
SOURCE_TAG = "mlflow.source.name"
DESCRIPTION_TAG = "mlflow.note.content"


def unique_suffix() -> str:
    """4 random hex characters: two runs of one config get two names (``lstm-h128-sst2-3f9a``)."""
    return secrets.token_hex(2)


def hydra_job() -> tuple[list[str] | None, str | None]:
    """This Hydra job's command-line overrides and chosen experiment (None outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
    except ValueError:
        return None, None
    experiment = hydra_cfg.runtime.choices.get("experiment")
    return list(hydra_cfg.overrides.task), (str(experiment) if experiment else None)


def command_line(overrides: list[str]) -> str:
    """The command that repeats this run (one job of a sweep: that job alone)."""
    return " ".join(["python", "-m", "pipeline", *(shlex.quote(o) for o in overrides)])


def description(cfg: DictConfig, params: dict[str, Any], command: str | None) -> str:
    """A paragraph: the command, the task and data, the model's parts and what differs."""
    choices = {k: str(params[k]) for k in ("task", "data") if k in params}
    model = ("tokenizer", "embedding", "encoder", "pooler", "head")
    parts = [f"{params[g]} {g}" for g in model if g in params]
    changed = [f"{k}={v}" for k, v in params.items() if "." in k]
    text = (
        f"{choices.get('task', '?')} on {choices.get('data', '?')}: "
        f"{', '.join(parts)}; optimizer {params.get('optimizer', '?')}, seed {params.get('seed')}"
        + (f"; experiment {params['experiment']}" if "experiment" in params else "")
        + ". Differs from the defaults: "
        + (", ".join(changed) if changed else "nothing")
        + "."
    )
    return f"`{command}`\n\n{text}" if command else text


def start_tracker(cfg: DictConfig, tracker: Any, ctx: Any) -> None:
    """Start the run's tracker (a child of the sweep's parent inside a sweep), named, tagged
    and described; a new run logs its params, a resumed one logs none again."""
    from pipeline.run.sweep import child_name_suffix, current_sweep, trial_suffix

    tracking, task = ctx.tracking, ctx.task
    overrides, experiment = hydra_job()
    sweep = current_sweep() if tracking.name == "mlflow" else None
    name = tracking.run_name
    if not name:
        name = run_name(cfg)
        if sweep is not None:
            name += child_name_suffix(overrides or [], sweep.swept) + trial_suffix(sweep)
        name += f"-{unique_suffix()}"
    params = run_params(cfg, override_keys(overrides or []), experiment)
    command = command_line(overrides) if overrides is not None else None
    tags = {
        "task": task.name,
        "data": str(cfg.data.name),
        "encoder": str(cfg.encoder.name),
        "git_commit": git_commit(),
        "device": str(ctx.device),
        "pipeline_version": __version__,
        **provider_tags(cfg),
        DESCRIPTION_TAG: description(cfg, params, command),
    }
    if ctx.init_from is not None:  # the language model it starts from: linked
        tags |= ctx.init_from.tags
        tags[DESCRIPTION_TAG] += f" {ctx.init_from.sentence()}"
    if command:
        tags[SOURCE_TAG] = command
    tracker.start(
        tracking.experiment or task.name,
        name,
        tags,
        parent_run_id=sweep.parent_run_id if sweep else None,
        run_id=ctx.resumed.mlflow_run_id if ctx.resumed else None,
    )
    if ctx.resumed is None:
        tracker.log_params(params)


def provider_tags(cfg: DictConfig) -> dict[str, str]:
    """``plugin.<group>``: the distribution and version that provided each chosen component
    and the task kind (``plugin.encoder`` = ``seqpipe-qrnn 0.1.0``), built-ins included."""
    from pipeline import registry, tasks

    tags = {
        f"plugin.{group}": registry.provider_version(components.get(str(cfg[group].name)).provider)
        for group, components in registry.ALL.items()
    }
    return tags | {"plugin.task": registry.provider_version(tasks.provider(cfg))}


def log_datasets(tracker: Any, name: str, fingerprint: dict[str, Any] | None) -> None:
    """Each split the model sees as a run input: the data's name, the split as its context,
    a digest of its rows (:mod:`pipeline.data.fingerprint`), where it came from, its size."""
    if not fingerprint:
        return
    source_type, source = dataset_source(str(fingerprint.get("source", "")))
    labels = fingerprint.get("labels")
    for split, found in (fingerprint.get("splits") or {}).items():
        profile = {"rows": found.get("rows")} | ({"labels": labels} if labels else {})
        digest = str(found.get("sha256", ""))[:12]
        tracker.log_dataset(DatasetRef(name, digest, source_type, source, split, profile))


def dataset_source(source: str) -> tuple[str, str]:
    """MLflow's source type and JSON for a data source (``hub:<path>``, ``local:<files>``)."""
    kind, _, where = source.partition(":")
    if kind == "hub":
        return "hugging_face", json.dumps({"path": where.strip()})
    if kind == "local":
        return "local", json.dumps({"uri": where.strip()})
    return "code", json.dumps({"description": source})
