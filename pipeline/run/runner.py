"""One run, end to end: data -> tokenize -> model -> fit -> evaluate, tracked throughout.

Each stage is a plain function in ``pipeline.stages``; this module only wires them
together and records what happens.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import __version__
from pipeline.config.schemas import (
    OptimizerConfig,
    TaskConfig,
    TrackingConfig,
    TrainerConfig,
    component_configs,
    typed,
)
from pipeline.errors import PipelineError


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


def output_directory() -> Path:
    """The Hydra run's output directory, or ``./outputs/manual`` outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path("outputs") / "manual"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_name(cfg: DictConfig) -> str:
    """Say what differs: ``lstm-h128-bi-l2-imdb``."""
    enc = cfg.encoder
    parts = [str(enc.name)]
    if "hidden_size" in enc:
        parts.append(f"h{enc.hidden_size}")
    if enc.get("bidirectional"):
        parts.append("bi")
    if enc.get("num_layers", 1) and enc.get("num_layers", 1) > 1:
        parts.append(f"l{enc.num_layers}")
    parts.append(str(cfg.data.name))
    return "-".join(parts)


def data_config(cfg: DictConfig, task: TaskConfig) -> Any:
    """The checked ``data`` section: a labelled data set, or a corpus for language models."""
    from pipeline.errors import ConfigError

    is_corpus = cfg.data.get("type") == "corpus"
    if task.type == "language_model":
        if not is_corpus:
            raise ConfigError(
                f"data={cfg.data.name} is a labelled data set, but task=lm needs a text corpus: "
                "data=timemachine, tiny_shakespeare, ptb or wikitext2."
            )
        from pipeline.data.corpus import to_corpus_config

        return to_corpus_config(cfg.data)
    if is_corpus:
        raise ConfigError(
            f"data={cfg.data.name} is a text corpus for language models; use task=lm with it, "
            "or a labelled data set (data=imdb, sst2, mr, trec, ag_news, files) with "
            f"task={task.name}."
        )
    from pipeline.data.labelled import DataConfig

    return typed(DataConfig, cfg.data, "data")


CLASSIFIER_METRICS = ("train/loss", "train/lr", "val/loss", "val/accuracy", "val/f1")
LM_METRICS = ("train/loss", "train/perplexity", "train/bpc", "train/lr", "val/loss")
LM_METRICS += ("val/perplexity", "val/bpc")


def check_monitor(monitor: str, task_type: str) -> None:
    """``trainer.monitor`` must name a per-epoch metric: say so before any data is read."""
    from pipeline.errors import ConfigError

    known = LM_METRICS if task_type == "language_model" else CLASSIFIER_METRICS
    if monitor not in known:
        raise ConfigError(
            f"trainer.monitor={monitor!r} is not a metric. Choose one of: {', '.join(known)}."
        )


def record_config(cfg: DictConfig, tracker, out_dir: Path, log_params: bool = True) -> dict:
    """Log the resolved config as flattened params and as ``config.yaml``; return it.

    ``trainer.resume`` is not a param (a resumed run logs into the run it continues, whose
    params must not change); a resumed run logs no params again.
    """
    from pipeline.tracking.tracker import flatten

    resolved = OmegaConf.to_container(cfg, resolve=True)
    if log_params:
        params = flatten(resolved)
        params.pop("trainer.resume", None)
        tracker.log_params(params)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    tracker.log_artifact(out_dir / "config.yaml")
    return resolved


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run(cfg: DictConfig) -> RunResult:
    """Train, evaluate and record the model described by ``cfg``."""
    started = time.perf_counter()
    # Validate every section before touching data, so a typo fails in a second.
    trainer = typed(TrainerConfig, cfg.trainer, "trainer")
    optimizer_cfg = typed(OptimizerConfig, cfg.optimizer, "optimizer")
    tracking_cfg = typed(TrackingConfig, cfg.tracking, "tracking")
    task = typed(TaskConfig, cfg.task, "task")
    from pipeline import registry

    data_cfg = data_config(cfg, task)
    check_monitor(trainer.monitor, task.type)
    component_configs(cfg)
    registry.tokenizers.config_from(cfg.tokenizer)

    # Valid: only now the heavy imports (torch, mlflow), so a config error stays fast.
    import torch

    from pipeline.runtime import distributed
    from pipeline.tracking.tracker import make_tracker
    from pipeline.training.interrupts import TrainingInterrupted

    job, device = distributed.setup(trainer.device)
    distributed.check_supported(job, task.type)
    if not job.is_main:  # one voice: rank 0 prints, writes and tracks
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
        tracking_cfg.name, tracking_cfg.log_model = "none", False
    if trainer.num_threads:
        torch.set_num_threads(trainer.num_threads)
    out_dir = output_directory()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(output_dir=out_dir)
    resumed: dict[str, Any] | None = None
    if trainer.resume:
        from pipeline.run.resume import load_for_resume

        path, resumed = load_for_resume(
            trainer.resume, OmegaConf.to_container(cfg, resolve=True), tracking_cfg.uri
        )
        trainer.checkpoint_dir = str(path.parent)  # go on writing beside it
        point = resumed["resume"]
        print(f"resume: {path} (epoch {point['epoch']}, step {point['step']})", flush=True)
    trainer.checkpoint_dir = str(Path(trainer.checkpoint_dir or out_dir))

    from pipeline.run.sweep import child_name_suffix, current_sweep, job_overrides

    sweep = current_sweep() if tracking_cfg.name == "mlflow" else None
    name = tracking_cfg.run_name or run_name(cfg)
    if sweep is not None and not tracking_cfg.run_name:
        name += child_name_suffix(job_overrides(), sweep.swept)
    tracker = make_tracker(tracking_cfg, journal=out_dir / "tracking.jsonl")
    tracker.start(
        tracking_cfg.experiment or task.name,
        name,
        {
            "task": task.name,
            "data": str(cfg.data.name),
            "encoder": str(cfg.encoder.name),
            "git_commit": git_commit(),
            "device": str(device),
            "pipeline_version": __version__,
        },
        parent_run_id=sweep.parent_run_id if sweep else None,
        run_id=resumed.get("mlflow_run_id") if resumed else None,
    )
    tracker.set_tags(
        {
            "checkpoint_dir": str(Path(trainer.checkpoint_dir).resolve()),
            "world_size": str(job.world_size),
        }
    )
    result.run_id, result.tracking = tracker.run_id, tracker.describe()
    quiet_libraries(trainer.progress)
    try:
        if task.type == "language_model":
            from pipeline.run.language_model import run_language_model

            run_language_model(
                cfg,
                data_cfg,
                trainer,
                optimizer_cfg,
                tracking_cfg,
                task,
                device,
                tracker,
                out_dir,
                result,
                resumed,
            )
        else:
            _run_stages(
                cfg,
                data_cfg,
                trainer,
                optimizer_cfg,
                tracking_cfg,
                device,
                tracker,
                out_dir,
                result,
                resumed,
                job,
            )
    except TrainingInterrupted as exc:
        from pipeline.run.resume import resume_command

        tracker.end("KILLED", error=str(exc))
        raise exc.with_command(resume_command(exc.checkpoint)) from None
    except KeyboardInterrupt:
        tracker.end("KILLED", error="interrupted (KeyboardInterrupt)")
        raise
    except BaseException as exc:
        tracker.end("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    tracker.end("FINISHED")
    distributed.teardown(job)
    result.seconds = time.perf_counter() - started
    if hasattr(tracker, "ui_command"):
        result.ui_command = tracker.ui_command()
    print_summary(result)
    return result


def _run_stages(
    cfg,
    data_cfg,
    trainer,
    optimizer_cfg,
    tracking_cfg,
    device,
    tracker,
    out_dir,
    result: RunResult,
    resumed: dict[str, Any] | None = None,
    job: Any = None,
) -> None:
    import torch

    from pipeline.data.batching import EncodedSplit
    from pipeline.data.labelled import load_data
    from pipeline.data.tokenize import fit_tokenizer, tokenize
    from pipeline.model.assembly import build_model, count_parameters
    from pipeline.model.checkpoint import load_checkpoint
    from pipeline.reporting.plots import confusion_matrix_plot, learning_curves
    from pipeline.training.evaluate import evaluate
    from pipeline.training.loop import autocast_dtype, fit

    seed = int(cfg.seed)
    resolved = record_config(cfg, tracker, out_dir, log_params=resumed is None)

    from pipeline.runtime.distributed import Distributed

    job = job or Distributed()
    if not job.is_main:
        job.barrier()  # rank 0 reads and tokenizes first; the others then hit its cache
    data = load_data(cfg.data, seed=seed)
    print(
        f"data: {data.source}: "
        + ", ".join(f"{k} {len(v):,}" for k, v in data.splits.items())
        + f"; {len(data.labels)} labels",
        flush=True,
    )
    if len(data.labels) < 2:
        raise PipelineError(
            f"The training data has a single label ({data.labels}); a "
            "classifier needs at least two. Check data.label_column."
        )
    tokenizer = fit_tokenizer(cfg.tokenizer, data.splits["train"])
    tokenized = tokenize(data.splits, tokenizer, data_cfg.max_length)
    print(
        f"tokenized: vocabulary {tokenizer.vocab_size:,}; "
        + (
            "all splits from cache"
            if tokenized.rows_tokenized == 0
            else f"{tokenized.rows_tokenized:,} rows in {tokenized.seconds:.1f}s"
        ),
        flush=True,
    )
    if job.is_main:
        job.barrier()
    tokenizer_dir = out_dir / "tokenizer"
    tokenizer.save(tokenizer_dir)
    (tokenizer_dir / "labels.json").write_text(json.dumps(data.labels))
    tracker.log_artifact(tokenizer_dir, "tokenizer")
    splits = {
        name: EncodedSplit.from_dataset(ds, tokenizer.pad_id)
        for name, ds in tokenized.splits.items()
    }

    seed_everything(seed)
    num_classes = len(data.labels)
    model = build_model(cfg, tokenizer.vocab_size, tokenizer.pad_id, num_classes)
    n_params = count_parameters(model)
    tracker.set_tags({"n_params": str(n_params)})
    print(f"model: {n_params:,} parameters on {device}", flush=True)

    checkpoint_dir = Path(trainer.checkpoint_dir)
    extra = {
        "config": resolved,
        "labels": list(map(str, data.labels)),
        "versions": {"pipeline": __version__, "torch": str(torch.__version__)},
        "tokenizer_dir": str(tokenizer_dir.resolve()),
        "mlflow_run_id": tracker.run_id,
    }
    fitted = fit(
        model,
        splits["train"],
        splits["validation"],
        trainer=trainer,
        optimizer_cfg=optimizer_cfg,
        num_classes=num_classes,
        device=device,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        checkpoint_extra=extra,
        on_epoch=lambda epoch, m: tracker.log_metrics(m, step=epoch),
        resume=resumed,
        job=job,
    )
    if not job.is_main:
        return  # training is done; rank 0 evaluates, reports and logs
    result.best_checkpoint = fitted.best_path
    if fitted.best_path is not None:
        model.load_state_dict(load_checkpoint(fitted.best_path)["model"])
    test = evaluate(
        model,
        splits["test"],
        batch_size=trainer.eval_batch_size,
        device=device,
        num_classes=num_classes,
        autocast_dtype=autocast_dtype(device, trainer.amp),
    )
    result.metrics = {
        **{k: v for k, v in fitted.history[fitted.best_epoch - 1].items() if k.startswith("val/")},
        **test.metrics("test"),
    }
    tracker.log_metrics(test.metrics("test"), step=fitted.best_epoch)
    tracker.log_metrics({"best_epoch": fitted.best_epoch})

    labels = [str(label) for label in data.labels]
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    learning_curves(fitted.history, plots / "learning_curves.png")
    confusion_matrix_plot(test.confusion, labels, plots / "confusion_matrix.png")
    from pipeline.reporting.reports import write_classification_reports

    write_classification_reports(
        model,
        splits["validation"],
        data.splits["validation"]["text"],
        test.confusion,
        labels,
        tokenizer,
        device,
        out_dir,
        batch_size=trainer.eval_batch_size,
    )
    tracker.log_artifact(out_dir / "reports", "reports")
    tracker.log_artifact(plots, "plots")
    if tracking_cfg.log_model:  # raw text in, labels out: see pipeline/inference/pyfunc_model.py
        tracker.log_classifier(
            fitted.best_path or fitted.last_path,
            tokenizer_dir,
            labels,
            register_as=tracking_cfg.register_as,
        )


def quiet_libraries(progress: str) -> None:
    """Keep the console for our own progress: no INFO chatter from libraries, and no
    per-map progress bars from ``datasets`` unless a live bar was asked for."""
    import logging

    import datasets

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # pickle format is ours
    if progress in ("log", "none") or (progress == "auto" and not sys.stderr.isatty()):
        datasets.disable_progress_bars()


def print_summary(result: RunResult) -> None:
    lines = ["", "== run finished in " + f"{result.seconds:.0f}s =="]
    lines += [f"  {k:<14} {v:.4f}" for k, v in sorted(result.metrics.items())]
    lines.append(f"  outputs        {result.output_dir}")
    if result.best_checkpoint:
        lines.append(f"  checkpoint     {result.best_checkpoint}")
    if result.run_id:
        lines.append(f"  mlflow run     {result.run_id} ({result.tracking})")
        lines.append(f"  open the UI    {result.ui_command}")
    print("\n".join(lines), file=sys.stdout, flush=True)
