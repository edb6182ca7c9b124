"""Evaluate a trained classifier (or tagger) on another data set, recorded as a new MLflow run.

    python -m pipeline evaluate model=<run id | runs:/... | models:/... | best.pt> data=sst2 \
        [data.max_eval_samples=1000] [split=test] [batch_size=256] [device=auto] \
        [tracking=none] [tracking.uri=http://...] [tracking.experiment=...]

The data set is composed from its preset exactly as a training run composes it (Hydra's
compose API over ``conf/``), so ``data.*`` overrides work as they do there; a split the preset
lacks is carved from train as training carves it, and the first line says so. Your own files
(``data=files``) are scored whole, never carved: ``data.<split>=<file>``, or the one file named
(``data.train=x.csv`` alone scores all of x.csv as ``split``). Its labels are
matched to the model's by name: exactly, ignoring case, or where one is a prefix of the other
(IMDb's ``neg``/``pos`` and SST-2's ``negative``/``positive``). Texts are cut to the
model's training ``max_length``. The metrics (``<split>/accuracy``, ``/f1``, ``/loss``), a
confusion matrix and the per-class report go to a new run in the model's experiment, tagged
with the model's run id and linked to it in the run's description. A tagging model is scored
by ``pipeline.inference.tag_evaluate`` (``data=ud_ewt``, or ``data=files`` with tagged files).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config.arguments import parse_key_values
from pipeline.errors import ConfigError, PipelineError
from pipeline.inference.evaluation_run import CrossEvaluation, record_evaluation, what_is_scored

TRACKING_KEYS = ("tracking.uri", "tracking.experiment", "tracking.run_name")


@dataclass
class EvaluateArgs:
    model: str = ""
    data: str = ""
    split: str = "test"
    batch_size: int = 256
    device: str = "auto"
    tracking: str = "mlflow"
    seed: int = 42
    output_dir: str = ""
    data_overrides: list[str] = field(default_factory=list)
    tracking_overrides: dict[str, str] = field(default_factory=dict)


def parse_args(argv: list[str]) -> EvaluateArgs:
    """``key=value`` arguments; ``data.*`` and ``tracking.*`` pass through to their groups."""
    args, forwarded = parse_key_values(
        "evaluate",
        argv,
        EvaluateArgs,
        forward=lambda key: key.startswith("data.") or key in TRACKING_KEYS,
        also_known=["data.<key>", *TRACKING_KEYS],
        not_arguments=("data_overrides", "tracking_overrides"),
    )
    for item in forwarded:
        key, _, value = item.partition("=")
        if key in TRACKING_KEYS:
            args.tracking_overrides[key.split(".", 1)[1]] = value
        else:
            args.data_overrides.append(item)
    if not args.model or not args.data:
        raise ConfigError(
            "evaluate needs model=<checkpoint | MLflow run id | runs:/<id>/<model name> | "
            "models:/<name>/<version>> and data=<preset>, e.g. "
            "python -m pipeline evaluate model=outputs/.../best.pt data=sst2."
        )
    if args.split not in ("train", "validation", "test"):
        raise ConfigError(f"evaluate split={args.split}: use train, validation or test.")
    if args.tracking not in ("mlflow", "none"):
        raise ConfigError(f"evaluate tracking={args.tracking}: use mlflow or none.")
    if args.batch_size < 1:
        raise ConfigError(f"evaluate batch_size={args.batch_size}: it must be >= 1.")
    return args


def compose_data(preset: str, overrides: list[str]) -> Any:
    """The ``data`` node of ``data=<preset>`` plus overrides, composed as a training run would."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from pipeline.config.cli import check_overrides

    check_overrides([f"data={preset}", *overrides])
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose(config_name="config", overrides=[f"data={preset}", *overrides])
    if cfg.data.get("type") == "corpus":
        raise ConfigError(
            f"data={preset} is a text corpus for language models; evaluate a classifier on a "
            "labelled data set (data=imdb, sst2, mr, trec, ag_news or files)."
        )
    return cfg.data


def _normal(label: str) -> str:
    return label.strip().lower()


def align_labels(model_labels: list[str], data_labels: list[str]) -> list[int]:
    """For each data label, the id of the model label with the same meaning.

    A data label matches a model label with the same name, ignoring case, or one that is a
    prefix of the other (``neg`` ~ ``negative``); the match must be one-to-one.
    """
    model_norm = [_normal(m) for m in model_labels]
    mapping: list[int] = []
    for label in data_labels:
        name = _normal(label)
        exact = [i for i, m in enumerate(model_norm) if m == name]
        prefix = [i for i, m in enumerate(model_norm) if m.startswith(name) or name.startswith(m)]
        found = exact or prefix
        if len(found) != 1:
            break
        mapping.append(found[0])
    if len(mapping) != len(data_labels) or len(set(mapping)) != len(mapping):
        raise PipelineError(
            f"The data set's labels ({', '.join(data_labels)}) do not match the model's "
            f"({', '.join(model_labels)}) by name. Rename the data set's labels in id order "
            f"with data.label_names=[{','.join(model_labels[: len(data_labels)])}] (or map raw "
            "values with data.label_map), so that each names one of the model's labels."
        )
    return mapping


def evaluate_texts(
    classifier: Any,
    texts: list[str],
    targets: list[int],
    split: str,
    *,
    batch_size: int,
    device: Any,
) -> CrossEvaluation:
    """Accuracy, macro-F1 and mean cross-entropy of ``classifier`` on labelled texts."""
    import torch

    from pipeline.reporting.metrics import accuracy, confusion_matrix, macro_f1

    started = time.perf_counter()
    probabilities = classifier.predict_proba(
        texts, batch_size=batch_size, device=device, progress=len(texts) > 1000
    )  # [N, C]
    target = torch.tensor(targets, dtype=torch.long)
    num_classes = len(classifier.labels)
    confusion = confusion_matrix(probabilities.argmax(dim=1), target, num_classes)
    picked = probabilities[torch.arange(len(targets)), target].clamp(min=1e-12)
    loss = float(-picked.log().mean()) if len(targets) else math.nan
    metrics = {
        f"{split}/accuracy": accuracy(confusion),
        f"{split}/f1": macro_f1(confusion),
        f"{split}/loss": loss,
    }
    return CrossEvaluation(metrics, confusion, len(targets), time.perf_counter() - started)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from pipeline.data.labelled import load_data
    from pipeline.inference.serving import load_predictor
    from pipeline.inference.tagger import TrainedTagger
    from pipeline.runtime.device import resolve_device

    data_cfg = compose_data(args.data, args.data_overrides)
    tracking_uri = args.tracking_overrides.get("uri", "")
    if tracking_uri:
        from pipeline.tracking.tracker import connect_client

        connect_client(tracking_uri)  # an unreachable server fails here, before any work
    whole = scored_file(data_cfg, args.split)  # data=files: whole files, nothing carved
    classifier = load_predictor(args.model, tracking_uri)
    if isinstance(classifier, TrainedTagger):  # pipeline.inference.tag_evaluate
        from pipeline.inference.tag_evaluate import evaluate_tags

        evaluate_tags(args, classifier, data_cfg, whole)
        return
    if data_cfg.get("type") == "tagged":
        raise ConfigError(
            f"data={args.data} is tagged data (a tag per word), and {args.model} is a "
            "classifier: evaluate it on labelled data (data=sst2, imdb, ... or files)."
        )
    data = load_data(data_cfg, seed=args.seed, whole_files=whole is not None)
    if args.split not in data.splits:
        raise PipelineError(
            f"data={args.data} has no {args.split} split ({', '.join(data.splits)}); choose one "
            "with split=..."
        )
    mapping = align_labels(classifier.labels, data.labels)
    rows = data.splits[args.split]
    texts = list(rows["text"])
    targets = [mapping[label] for label in rows["label"]]
    device = resolve_device(args.device)
    print(
        f"evaluate: {args.model} ({len(classifier.labels)} labels) on data={args.data} "
        f"{args.split}: {what_is_scored(len(texts), args.split, whole, data)}",
        flush=True,
    )
    result = evaluate_texts(
        classifier, texts, targets, args.split, batch_size=args.batch_size, device=device
    )
    out_dir = Path(args.output_dir or f"outputs/evaluate/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    files = _write_reports(result, classifier.labels, out_dir)
    run_id = None
    if args.tracking == "mlflow":
        run_id = record_evaluation(args, classifier, data_cfg, result, out_dir, files)
    print(f"\n== evaluated {result.examples:,} texts in {result.seconds:.1f}s ==")
    for key, value in sorted(result.metrics.items()):
        print(f"  {key:<18} {value:.4f}")
    print(f"  outputs            {out_dir}")
    if run_id:
        print(f"  mlflow run         {run_id} (model's run: {classifier.run_id or 'none'})")
    sys.stdout.flush()


def scored_file(data_cfg: Any, split: str) -> str | None:
    """With ``data=files``, the file scored as ``split``, whole: ``data.<split>``, else the one
    file named (``data.train=x.csv`` alone scores all of x.csv). The node is changed so that
    the file is that split; None for a preset (whose splits are those training uses)."""
    from pipeline.data.sources import SPLITS

    named = [s for s in SPLITS if data_cfg.get(s)]
    if not named or split in named:
        return data_cfg.get(split) or None
    if len(named) > 1:
        files = ", ".join(f"data.{s}={data_cfg[s]}" for s in named)
        raise ConfigError(
            f"evaluate split={split}: data.{split} is not set ({files}). evaluate scores whole "
            f"files and carves nothing: name the file with data.{split}=<file>, or choose "
            f"split= one of {', '.join(named)}."
        )
    data_cfg[split], data_cfg[named[0]] = data_cfg[named[0]], None
    return str(data_cfg[split])


def _write_reports(result: CrossEvaluation, labels: list[str], out_dir: Path) -> list[Path]:
    import json

    from pipeline.reporting.plots import confusion_matrix_plot
    from pipeline.reporting.reports import classification_report, format_report

    out_dir.mkdir(parents=True, exist_ok=True)
    report = classification_report(result.confusion, labels)
    (out_dir / "classification_report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "classification_report.txt").write_text(format_report(report))
    plot = confusion_matrix_plot(result.confusion, labels, out_dir / "confusion_matrix.png")
    return [out_dir / "classification_report.json", out_dir / "classification_report.txt", plot]
