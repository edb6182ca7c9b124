"""One run, for every task: check the config -> start the tracker -> the task prepares its
data and model -> the one training loop -> the best weights on the test split -> the task's
reports and logged model -> a summary. Tracked throughout; nothing here knows the task.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline import __version__
from pipeline.config.schemas import (
    OptimizerConfig,
    TaskConfig,
    TrackingConfig,
    TrainerConfig,
    check_root,
    component_configs,
    typed,
)
from pipeline.config.suggestions import (
    Suggestion,
    apply_data_suggestions,
    apply_suggestions,
    describe_applied,
    suggestions_of,
)
from pipeline.errors import ConfigError, PipelineError
from pipeline.reporting.summary import Phases, note_training, summary_lines
from pipeline.run.header import print_header
from pipeline.run.lock import discard_if_unused, discard_unclaimed
from pipeline.run.recording import output_directory, quiet_libraries, record_config, run_name


@dataclass
class RunResult:
    """What a run produced (also what the closing summary prints)."""

    metrics: dict[str, float] = field(default_factory=dict)
    output_dir: Path | None = None
    best_checkpoint: Path | None = None
    run_id: str | None = None
    tracking: str = ""
    ui_command: str | None = None
    seconds: float = 0.0
    trained: bool = False  # the training loop has ended
    best_epoch: str | None = None  # "2 of 3 (val/accuracy 0.8120)"
    stop_reason: str | None = None
    phases: Phases = field(default_factory=Phases)  # where the time went


@dataclass
class Sections:
    """The config, checked section by section, and the task it describes."""

    trainer: TrainerConfig
    optimizer: OptimizerConfig
    tracking: TrackingConfig
    task_config: TaskConfig
    task: Any  # a pipeline.contracts.Task
    suggested: list[Suggestion] = field(default_factory=list)  # applied to the config


def validate(cfg: DictConfig) -> Sections:
    """Check every section before touching data, so a typo fails in a second."""
    from pipeline import registry, tasks

    check_root(cfg)
    by_task = tasks.suggested_defaults(cfg).items()
    suggestions = [Suggestion(k, v, f"task={cfg.task.name}") for k, v in by_task]
    suggested = apply_suggestions(cfg, suggestions_of(cfg) + suggestions)
    trainer = typed(TrainerConfig, cfg.trainer, "trainer")
    optimizer = typed(OptimizerConfig, cfg.optimizer, "optimizer")
    tracking = typed(TrackingConfig, cfg.tracking, "tracking")
    task_config = typed(tasks.config_schema(cfg), cfg.task, "task")
    component_configs(cfg)
    registry.tokenizers.config_from(cfg.tokenizer)
    for group, components in registry.ALL.items():  # a plugin's broken class fails now,
        _ = components.get(str(cfg[group].name)).cls  # not after the data is read
    task = tasks.build(cfg)  # checks the sections the task owns (its data)
    check_monitor(trainer.monitor, task.metric_names)
    return Sections(trainer, optimizer, tracking, task_config, task, suggested)


def check_monitor(monitor: str, known: tuple[str, ...]) -> None:
    """``trainer.monitor`` must name a per-epoch metric: say so before any data is read."""
    if monitor not in known:
        raise ConfigError(
            f"trainer.monitor={monitor!r} is not a metric. Choose one of: {', '.join(known)}."
        )


def run(cfg: DictConfig) -> RunResult:
    """Train, evaluate and record the model described by ``cfg``."""
    started = time.perf_counter()
    try:
        sections = validate(cfg)
    except PipelineError:
        discard_unclaimed(output_directory())  # Hydra made it; nothing will go in it
        raise
    quiet_libraries(sections.trainer.progress)  # before MLflow and datasets speak
    # Valid: only now the heavy imports (torch, mlflow), so a config error stays fast.
    from pipeline.run.lock import RunFolders
    from pipeline.training.interrupts import StopAtOnce

    folders = RunFolders()
    try:
        with StopAtOnce():  # a signal before or after the training steps: KILLED, one line
            result = tracked_run(cfg, sections, folders)
    finally:
        folders.release()
    result.seconds = time.perf_counter() - started
    print_summary(result)
    return result


def tracked_run(cfg: DictConfig, sections: Sections, folders: Any) -> RunResult:
    """Start the run, train and test it, and end its tracked run with what happened."""
    from pipeline.runtime import distributed

    phases = Phases()
    ctx = start(cfg, sections, folders, phases)
    tracker = ctx.tracker
    result = RunResult(output_dir=ctx.out_dir, tracking=tracker.describe(), phases=phases)
    try:
        with phases.timing("logging"):
            begin_tracking(cfg, ctx, sections.tracking)
        print_header(ctx)
        for line in describe_applied(sections.suggested):
            print(line, flush=True)
        if sections.suggested:
            tracker.set_tags({"suggested": " ".join(describe_applied(sections.suggested))})
        result.run_id = tracker.run_id
        train_and_test(ctx, sections.task, result)
    except BaseException as exc:
        from pipeline.run.endings import end_stopped

        stop = end_stopped(ctx, result, exc)
        if ctx.job.is_main:
            discard_if_unused(ctx.out_dir)  # nothing of the run's own in it: no folder left
        if stop is exc:
            raise
        raise stop from None
    tracker.end("FINISHED")
    distributed.teardown(ctx.job)
    if hasattr(tracker, "ui_command"):
        result.ui_command = tracker.ui_command()
    return result


def start(cfg: DictConfig, sections: Sections, folders: Any, phases: Phases) -> Any:
    """Join torchrun's job, pick the device, lock the run's folders, find what to resume,
    connect to the tracking store (``phases``: its time counts as logging)."""
    import torch

    from pipeline.model.checkpoint import remove_partial_writes
    from pipeline.run.init_from import resolve_init_from
    from pipeline.run.resume import find_resume
    from pipeline.runtime import distributed
    from pipeline.runtime.files import check_writable
    from pipeline.tracking.tracker import make_tracker
    from pipeline.training.context import RunContext

    trainer, tracking = sections.trainer, sections.tracking
    job, device = distributed.setup(trainer.device)
    if not job.is_main:  # one voice: rank 0 prints, writes and tracks
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
        tracking.name, tracking.log_model = "none", False
    if trainer.num_threads:
        torch.set_num_threads(trainer.num_threads)
    out_dir = output_directory()
    out_dir.mkdir(parents=True, exist_ok=True)
    if job.is_main:
        folders.claim(out_dir)  # another live run writes it: refused, and it is left alone
    try:
        resumed = find_resume(cfg, trainer, tracking.uri)
        init_from = resolve_init_from(cfg, tracking.uri, resumed)  # checked before any data
        checkpoint_dir = Path(trainer.checkpoint_dir or out_dir)
        setting = "trainer.checkpoint_dir" if trainer.checkpoint_dir else "hydra.run.dir"
        check_writable(checkpoint_dir, setting)  # now, not after an epoch of training
        if job.is_main:  # the folder's one writer now: what a killed writer left can go
            folders.claim(checkpoint_dir)
            for tmp in remove_partial_writes(checkpoint_dir):
                print(f"removed {tmp}: a checkpoint write a killed run left unfinished")
        with phases.timing("logging"):
            tracker = make_tracker(tracking, journal=out_dir / "tracking.jsonl")
    except BaseException:
        if job.is_main:
            discard_if_unused(out_dir)
        raise
    return RunContext(
        cfg=cfg,
        trainer=trainer,
        optimizer=sections.optimizer,
        tracking=tracking,
        task=sections.task_config,
        device=device,
        job=job,
        tracker=tracker,
        out_dir=out_dir,
        checkpoint_dir=checkpoint_dir,
        seed=int(cfg.seed),
        resumed=resumed,
        init_from=init_from,
    )


def begin_tracking(cfg: DictConfig, ctx: Any, tracking: TrackingConfig) -> None:
    """Start (or, resuming, reopen) the tracked run and tag where its checkpoints go."""
    from pipeline.run.identity import start_tracker

    start_tracker(cfg, ctx.tracker, ctx)
    ctx.tracker.set_tags(
        {
            "checkpoint_dir": str(Path(ctx.checkpoint_dir).resolve()),
            "world_size": str(ctx.job.world_size),
        }
    )


def train_and_test(ctx: Any, task: Any, result: RunResult) -> None:
    """The recipe: prepare, fit, reload the best weights, test, let the task finish."""
    import torch

    from pipeline.model.assembly import count_parameters
    from pipeline.model.checkpoint import Checkpoint
    from pipeline.reporting.model_table import parameter_table
    from pipeline.run.identity import log_datasets
    from pipeline.run.results import log_results
    from pipeline.runtime.seeding import seed_everything
    from pipeline.training.callbacks import LogMetrics
    from pipeline.training.diagnostics import diagnostics_for
    from pipeline.training.loop import fit, prefixed
    from pipeline.training.progress import evaluating

    phases = result.phases
    with phases.timing("data"):
        task.prepare(ctx)
    with phases.timing("logging"):
        log_datasets(ctx.tracker, str(ctx.cfg.data.name), getattr(task, "data_fingerprint", None))
        from_data = adopt_data_suggestions(ctx, task)
        resolved = record_config(ctx.cfg, ctx.tracker, ctx.out_dir)
    ctx.checkpoint_extra = {
        "config": resolved,
        "versions": {"pipeline": __version__, "torch": str(torch.__version__)},
        "mlflow_run_id": ctx.tracker.run_id,
        "suggested": {s.key: s.value for s in from_data},
    }
    if ctx.init_from is not None:
        ctx.checkpoint_extra["init_from"] = ctx.init_from.tags  # a resumed run's tags
    seed_everything(ctx.seed)  # the model's initial weights depend on the seed alone
    model = task.build_model(ctx)
    start_from_pretrained(model, ctx.init_from)
    n_params = count_parameters(model)
    ctx.tracker.set_tags({"n_params": str(n_params)})
    if ctx.resumed is None:  # a resumed run logs no params again
        ctx.tracker.log_params({"n_params": n_params})
    precision = f" ({ctx.amp_policy.describe()})" if ctx.amp is not None else ""
    print("\n".join(parameter_table(model, str(ctx.device), precision)), flush=True)

    logger = LogMetrics(ctx.tracker)
    fitted = fit(task, model, ctx, callbacks=[logger, task, *diagnostics_for(task, ctx)])
    result.trained = True
    note_training(result, fitted, ctx.trainer.max_epochs, logger.seconds)
    if not ctx.job.is_main:
        return  # training is done; rank 0 evaluates, reports and logs
    result.best_checkpoint = fitted.best_path
    weights = "the last weights"
    with phases.timing("eval"):
        if fitted.best_path is not None:
            model.load_state_dict(Checkpoint.load(fitted.best_path).model)
            weights = f"{fitted.best_path.name}, epoch {fitted.best_epoch}"
        with evaluating(f"test ({weights})", ctx.trainer.progress):
            test = prefixed("test", task.evaluate(model, "test"))
    val = {k: v for k, v in fitted.best_metrics().items() if k.startswith("val/")}
    result.metrics = {**val, **test}
    with phases.timing("logging"):
        log_results(ctx.tracker, fitted, test)  # before finish: the model it logs links them
        task.finish(ctx, model, fitted, test)


def start_from_pretrained(model: Any, init_from: Any) -> None:
    """``model.init_from``: the language model's embedding and encoder weights, copied in
    (a resumed run takes its own weights from last.pt instead: nothing is loaded)."""
    if init_from is None or not init_from.loaded:
        return
    from pipeline.model.transfer import transfer

    copied = transfer(model, init_from)
    print(f"init_from: {copied} weight tensors copied. {init_from.sentence()}", flush=True)


def adopt_data_suggestions(ctx: Any, task: Any) -> list[Suggestion]:
    """Apply what the data suggests (after ``prepare``); tag it, and log it as params (they
    differ from the defaults, and were not known when the run's params were logged)."""
    named = run_name(ctx.cfg)
    from_data = apply_data_suggestions(ctx, task)
    if from_data:
        ctx.tracker.set_tags({"suggested_by_data": " ".join(describe_applied(from_data))})
        if ctx.resumed is None:
            ctx.tracker.log_params({s.key: s.value for s in from_data})
            rename_run(ctx.tracker, named, run_name(ctx.cfg))
    return from_data


def rename_run(tracker: Any, named: str, renamed: str) -> None:
    """A run named after settings the data then changed (``h128`` where the data suggested
    64 units) takes the name of what it trains; a name the user gave is kept."""
    current = getattr(tracker, "run_name", None)
    if renamed == named or not current or not current.startswith(named):
        return
    tracker.run_name = renamed + current[len(named) :]
    tracker.set_tags({"mlflow.runName": tracker.run_name})
    print(f"run name: {tracker.run_name} (was {current}: it names what the run trains)", flush=True)


def print_summary(result: RunResult) -> None:
    print("\n".join(summary_lines(result)), file=sys.stdout, flush=True)
