"""``python -m pipeline evaluate`` for a tagging model: the run's metrics on tagged data.

    python -m pipeline evaluate model=<tagging run id | runs:/... | best.pt> data=ud_ewt \
        [split=test] [data.max_eval_sentences=...]
    python -m pipeline evaluate model=... data=files data.test=my.conllu [data.format=conllu]

The sentences are read as training reads them (``pipeline.data.tagged``; a preset's missing
split carved from train the same way; your own file scored whole) in the tag column the model
was trained on (``data.tag_column`` of its run), and scored by the run's own evaluation: token
accuracy, macro-F1 over tags, accuracy on words unseen in its training (``oov_accuracy``),
the loss and, for BIO tags, span precision / recall / F1 (seqeval). A tag the model never saw
counts as an error. Metrics, the per-tag report and the confusion matrix go to a new MLflow
run linked to the model's run, as for a classifier (``pipeline.inference.evaluate``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, PipelineError
from pipeline.inference.evaluation_run import CrossEvaluation


@dataclass
class TagCrossEvaluation(CrossEvaluation):
    """A tagger's metrics on one split, with what its reports need."""

    result: Any = None  # pipeline.tasks.tagging_eval.TagEvaluation
    names: list[str] = field(default_factory=list)  # every tag, the model's first
    gold: list[list[str]] = field(default_factory=list)
    guess: list[list[str]] = field(default_factory=list)
    bio: bool = False


def tagged_config(data_cfg: Any, args: Any, tag_column: str) -> Any:
    """The composed ``data`` node as tagged data, in the model's tag column; other data, or
    another tag column asked for, is one error."""
    from pipeline.data.tagged import to_tagged_config

    kind = data_cfg.get("type")
    if kind not in ("tagged", None) or (kind is None and data_cfg.name != "files"):
        raise ConfigError(
            f"data={data_cfg.name} is not tagged data, and {args.model} is a tagging model: "
            "evaluate it on data=ud_ewt, or data=files data.test=your.conllu (CoNLL-U or "
            "CoNLL-2003 style)."
        )
    asked = next(
        (o.split("=", 1)[1] for o in args.data_overrides if o.startswith("data.tag_c")), ""
    )
    if asked and asked != tag_column:
        raise ConfigError(
            f"data.tag_column={asked}, but {args.model} was trained on {tag_column} tags; drop "
            "data.tag_column (the model's column is used)."
        )
    config = to_tagged_config(data_cfg)
    config.tag_column = tag_column
    return config


def read_split(config: Any, split: str, whole: str | None) -> tuple[list[Any], Any]:
    """The sentences scored, and the data they come from (None for a whole file)."""
    from pipeline.data.tagged import load_tagged, read_file

    if whole is not None:
        path = Path(whole).expanduser()
        if not path.is_file():
            raise PipelineError(f"data.{split}={whole}: the file {path.absolute()} does not exist.")
        sentences = read_file(path, config.format, config.tag_column)
        return sentences[: config.max_eval_sentences or None], None
    data = load_tagged(config)
    return data.splits[split], data


def score(
    tagger: Any, sentences: list[Any], split: str, args: Any, device: Any
) -> TagCrossEvaluation:
    """The run's metrics (``<split>/accuracy`` ...) of ``tagger`` on ``sentences``."""
    from pipeline.tasks.tagging_eval import is_bio, span_scores

    started = time.perf_counter()
    words, gold = [w for w, _ in sentences], [t for _, t in sentences]
    names = tagger.with_tags(t for tags in gold for t in tags)
    if len(names) > len(tagger.tags):
        print(f"note: tags the model never saw count as errors: {names[len(tagger.tags) :]}")
    result = tagger.evaluate(words, gold, names=names, batch_size=args.batch_size, device=device)
    metrics = result.metrics()
    if tagger.train_words is None:  # a run before train_words.json: OOV words unknown
        metrics.pop("oov_accuracy")
    guess = [[names[i] for i in row] for row in result.predicted]
    bio = is_bio(tagger.tags[: tagger.num_outputs])
    if bio:
        metrics |= span_scores(gold, guess)
    metrics = {f"{split}/{name}": value for name, value in metrics.items()}
    seconds = time.perf_counter() - started
    return TagCrossEvaluation(
        metrics, result.confusion, len(sentences), seconds, result, names, gold, guess, bio
    )


def write_reports(evaluation: TagCrossEvaluation, out_dir: Path) -> list[Path]:
    """The per-tag report (and span report for BIO tags) and the confusion matrix."""
    from pipeline.reporting.plots import confusion_matrix_plot
    from pipeline.tasks.tagging_report import write_tag_reports

    e = evaluation
    files = write_tag_reports(e.result, e.names, out_dir, e.gold, e.guess, e.bio)
    files.append(confusion_matrix_plot(e.confusion, e.names, out_dir / "confusion_matrix.png"))
    return files


def evaluate_tags(args: Any, tagger: Any, data_cfg: Any, whole: str | None) -> None:
    """Score ``tagger`` on ``args.split`` of ``data_cfg``; print, write and record it."""
    from pipeline.inference.evaluation_run import record_evaluation, what_is_scored
    from pipeline.runtime.device import resolve_device

    config = tagged_config(data_cfg, args, tagger.tag_column)
    sentences, data = read_split(config, args.split, whole)
    words = sum(len(w) for w, _ in sentences)
    where = what_is_scored(len(sentences), args.split, whole, data, "sentences")
    print(
        f"evaluate: {args.model} ({tagger.num_outputs} {tagger.tag_column} tags) on "
        f"data={args.data} {args.split}: {where} ({words:,} words)",
        flush=True,
    )
    evaluation = score(tagger, sentences, args.split, args, resolve_device(args.device))
    out_dir = Path(args.output_dir or f"outputs/evaluate/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    files = write_reports(evaluation, out_dir)
    run_id = None
    if args.tracking == "mlflow":
        run_id = record_evaluation(args, tagger, data_cfg, evaluation, out_dir, files)
    print(f"\n== evaluated {len(sentences):,} sentences ({words:,} words) ", end="")
    print(f"in {evaluation.seconds:.1f}s ==")
    for key, value in sorted(evaluation.metrics.items()):
        print(f"  {key:<22} {value:.4f}")
    print(f"  outputs                {out_dir}")
    if run_id:
        print(f"  mlflow run             {run_id} (model's run: {tagger.run_id or 'none'})")
    sys.stdout.flush()
