"""An evaluation of a trained model on a data set (``python -m pipeline evaluate``): its
metrics, what was scored, and its record as a new MLflow run in the model's experiment, tagged
with the model's run id and linked to it in the run's description (classifiers and taggers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class CrossEvaluation:
    """Metrics of the model on one split of another data set."""

    metrics: dict[str, float]
    confusion: Any  # [C, C] over the model's labels
    examples: int
    seconds: float


def what_is_scored(rows: int, split: str, whole: str | None, data: Any, unit: str = "texts") -> str:
    """Which rows are scored, in words: a whole file, or a preset's (maybe carved) split."""
    if whole is not None:
        return f"all {rows:,} rows of {whole} (the whole file; nothing is carved)"
    text = f"{rows:,} {unit} from {data.source}"
    if split in data.carved:
        text += (
            f", the {split} part carved (seeded) from train as training carves it; to score "
            "a whole file, use data=files data.test=<file>"
        )
    return text


def record_evaluation(
    args: Any,  # pipeline.inference.evaluate.EvaluateArgs
    classifier: Any,  # a TrainedClassifier or TrainedTagger: its config and run_id
    data_cfg: Any,
    result: CrossEvaluation,
    out_dir: Path,
    files: list[Path],
) -> str | None:
    """A new run in the model's experiment, linked to the model's run."""
    from pipeline.config.schemas import TrackingConfig
    from pipeline.tracking.tracker import make_tracker

    config = classifier.config or {}
    trained_on = str(config.get("data", {}).get("name", "?"))
    experiment = args.tracking_overrides.get("experiment") or str(
        config.get("task", {}).get("name", "evaluate")
    )
    tracking = TrackingConfig(uri=args.tracking_overrides.get("uri") or None)
    tracker = make_tracker(tracking, journal=out_dir / "tracking.jsonl")
    encoder = str(config.get("encoder", {}).get("name", "model"))
    name = args.tracking_overrides.get("run_name") or f"eval-{encoder}-{trained_on}-on-{args.data}"
    tags = {
        "pipeline.evaluate": "true",
        "task": str(config.get("task", {}).get("name", "")),
        "data": str(data_cfg.name),
        "trained_on": trained_on,
        "encoder": encoder,
        "model": args.model,
    }
    if classifier.run_id:
        tags["source_run_id"] = classifier.run_id
    tracker.start(experiment, name, tags)
    if classifier.run_id:
        link = f"#/experiments/{tracker.experiment_id}/runs/{classifier.run_id}"
        tracker.set_tags(
            {
                "mlflow.note.content": (
                    f"Evaluation of the model of run [{classifier.run_id}]({link}) "
                    f"(trained on {trained_on}) on data={args.data}, split {args.split}."
                )
            }
        )
    tracker.log_params(
        {
            "model": args.model,
            "data.name": str(data_cfg.name),
            "split": args.split,
            "examples": result.examples,
            "trained_on": trained_on,
            **{o.split("=", 1)[0]: o.split("=", 1)[1] for o in args.data_overrides},
        }
    )
    tracker.log_metrics(result.metrics)
    for path in files:
        tracker.log_artifact(path, "reports")
    tracker.end("FINISHED")
    return tracker.run_id
