"""Classification (``task=sentiment``, ``task=topic``): one label per text.

Labelled data -> tokenizer fitted on train -> length-bucketed batches -> embedding ->
encoder -> pooler -> classifier head; cross-entropy; loss, accuracy and macro-F1; reports,
plots and a logged model that serves raw text.
"""

from __future__ import annotations

import json
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.config.schemas import typed
from pipeline.config.suggestions import Suggestion
from pipeline.contracts import EpochBatches
from pipeline.data.batching import EncodedSplit, EpochOrders, iterate_batches
from pipeline.data.placement import keep_on_device
from pipeline.errors import ConfigError, PipelineError
from pipeline.model.transfer import SHARED  # what a model from a language model takes from it
from pipeline.tasks.classification_eval import Evaluation, evaluate
from pipeline.tasks.related import (
    add_related_words,
    related_texts_reader,
    takes_related_words,
    word2vec_suggestion,
)
from pipeline.training.context import RunContext

SPLIT_PREFIX = {"validation": "val", "test": "test"}
#: Training sets smaller than this train longer by default (``suggested_settings``).
SMALL_TRAIN_ROWS = 20_000


class ClassificationTask:
    metric_names = ("train/loss", "train/lr", "val/loss", "val/accuracy", "val/f1")
    unit = "samples"
    step_name = "step"
    noun, predicts = "classification", "labels"  # what its checkpoints are, and do
    usage = 'predict model={path} text="..."'  # the sub-command that uses them

    def __init__(self, cfg: Any) -> None:
        from pipeline.data.data_config import DataConfig
        from pipeline.data.synthetic import is_generated, to_long_lag_config

        if cfg.data.get("type") == "corpus":
            raise ConfigError(
                f"data={cfg.data.name} is a text corpus for language models; use task=lm with "
                "it, or a labelled data set (data=imdb, sst2, mr, trec, ag_news, files) with "
                f"task={cfg.task.name}."
            )
        if cfg.data.get("type") == "tagged":
            raise ConfigError(
                f"data={cfg.data.name} holds tagged sentences (one tag per word); use "
                f"task=tagging with it, or a labelled data set with task={cfg.task.name}."
            )
        lm_only = [k for k in ("as_corpus", "reverse", "corpus_extra") if cfg.data.get(k)]
        if lm_only:
            raise ConfigError(
                f"{', '.join(f'data.{k}' for k in lm_only)} only shape a language model's "
                f"text stream (task=lm); task={cfg.task.name} reads labelled rows. Drop it, "
                "or train the language model with task=lm and start from it with "
                "model.init_from=<its run or checkpoint>."
            )
        self.data_cfg = (
            to_long_lag_config(cfg.data)
            if is_generated(cfg.data)
            else typed(DataConfig, cfg.data, "data")
        )
        self.evaluations: dict[str, Evaluation] = {}

    @classmethod
    def from_splits(
        cls, ctx: RunContext, splits: dict[str, EncodedSplit], labels: list[str]
    ) -> ClassificationTask:
        """A task over splits already encoded in memory (tests, notebooks): no data config,
        no tokenizer; ``prepare`` is not called."""
        task = cls.__new__(cls)
        task.ctx, task.splits, task.labels = ctx, splits, [str(label) for label in labels]
        task.evaluations, task.tokenizer_dir = {}, None
        task._place_splits()
        return task

    def prepare(self, ctx: RunContext) -> None:
        from pipeline.data import fingerprint
        from pipeline.data.labelled import load_data
        from pipeline.data.tokenize import tokenize

        self.ctx, self._orders = ctx, None
        if not ctx.job.is_main:
            ctx.job.barrier()  # rank 0 reads and tokenizes first; the others then hit its cache
        data = load_data(ctx.cfg.data, seed=ctx.seed)
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in data.splits.items())
        print(f"data: {data.source}: {sizes}; {len(data.labels)} labels", flush=True)
        if len(data.labels) < 2:
            raise PipelineError(
                f"The training data has a single label ({data.labels}); a classifier needs at "
                "least two. Check data.label_column."
            )
        self.data_fingerprint = fingerprint.fingerprint(data.splits, data.source, data.labels)
        fingerprint.check_resumed(ctx.resumed, self.data_fingerprint, ctx.checkpoint_dir)
        self.tokenizer = fingerprint.tokenizer_for(
            ctx.cfg.tokenizer, data.splits["train"], ctx.resumed, ctx.checkpoint_dir, ctx.init_from
        )
        self._related = related_texts_reader(self.data_cfg, data.splits, ctx.seed, ctx.tracker)
        if takes_related_words(ctx, self.data_cfg, self.tokenizer):
            self._related = add_related_words(self.tokenizer, self._related)
        self.data_fingerprint["tokenizer"] = fingerprint.tokenizer_identity(self.tokenizer)
        tokenized = tokenize(
            data.splits,
            self.tokenizer,
            self.data_cfg.max_length,
            # generated data (data=long_lag) has no such key: its texts are never cut
            truncation_side=getattr(self.data_cfg, "truncation_side", "right"),
        )
        done = (
            "all splits from cache"
            if tokenized.rows_tokenized == 0
            else f"{tokenized.rows_tokenized:,} rows in {tokenized.seconds:.1f}s"
        )
        print(f"tokenized: vocabulary {self.tokenizer.vocab_size:,}; {done}", flush=True)
        if ctx.job.is_main:
            ctx.job.barrier()
        self.texts, self.labels = data.splits, [str(label) for label in data.labels]
        self.train_rows = len(data.splits["train"])
        self.tokenizer_dir = ctx.out_dir / "tokenizer"
        self.tokenizer.save(self.tokenizer_dir)
        (self.tokenizer_dir / "labels.json").write_text(json.dumps(data.labels))
        ctx.tracker.log_artifact(self.tokenizer_dir, "tokenizer")
        self.splits = {
            name: EncodedSplit.from_dataset(ds, self.tokenizer.pad_id)
            for name, ds in tokenized.splits.items()
        }
        self._place_splits()

    def suggested_settings(self) -> list[Suggestion]:
        """Settings chosen by the data read (applied where the user left the default): a
        few thousand sentences need more epochs than the default 6, sized for IMDb's 22,500
        reviews, and more patience with their small, noisy validation split. A data config
        may suggest its own (``suggested_settings()``: ``data=long_lag``'s forget bias,
        ``data=imdb``'s BiLSTM), except for the model's shape when it starts from a language
        model (``model.init_from``: its tokenizer, embedding and encoder are the LM's)."""
        data_cfg = getattr(self, "data_cfg", None)
        own = getattr(data_cfg, "suggested_settings", None)
        found = [Suggestion(k, v, f"data={data_cfg.name}") for k, v in own().items()] if own else []
        if getattr(getattr(self, "ctx", None), "init_from", None) is not None:
            found = [s for s in found if s.key.partition(".")[0] not in SHARED]
        if hasattr(self, "tokenizer"):  # read from the data: the related texts' word vectors
            found += word2vec_suggestion(self.ctx, data_cfg, self.tokenizer)
        rows = getattr(self, "train_rows", None)
        if rows is None or rows >= SMALL_TRAIN_ROWS:
            return found
        why = f"the data ({rows:,} training texts, under {SMALL_TRAIN_ROWS:,})"
        small = [Suggestion("trainer.max_epochs", 30, why), Suggestion("trainer.patience", 4, why)]
        return found + small

    def _place_splits(self) -> None:
        """``trainer.data_on_device``: a copy of the splits on the GPU when they fit."""
        nbytes = sum(split.nbytes for split in self.splits.values())
        if keep_on_device(self.ctx.trainer.data_on_device, self.ctx.device, nbytes):
            self.splits = {k: v.to_device(self.ctx.device) for k, v in self.splits.items()}

    def build_model(self, ctx: RunContext) -> nn.Module:
        from pipeline.model.assembly import build_model

        model = build_model(
            ctx.cfg,
            self.tokenizer.vocab_size,
            self.tokenizer.pad_id,
            len(self.labels),
            vocabulary=self._vocabulary(ctx),
        )
        self._related = None  # built: free the related texts kept from the vocabulary step
        return model

    def _vocabulary(self, ctx: RunContext) -> Any:
        """What an embedding that reads word vectors needs: the vocabulary, the train texts."""
        from pipeline import registry
        from pipeline.contracts import Vocabulary, uses_vocabulary

        components = registry.embeddings
        config = components.config_from(ctx.cfg.embedding)
        if not uses_vocabulary(components.get(str(ctx.cfg.embedding.name)).cls, config):
            return None
        tokenizer, train = self.tokenizer, self.texts["train"]
        if not hasattr(tokenizer, "vocab"):
            raise ConfigError(
                f"embedding={ctx.cfg.embedding.name} aligns word vectors to the tokenizer's "
                f"vocabulary, but tokenizer={ctx.cfg.tokenizer.name} does not list one (no "
                "vocab()). Use tokenizer=word or basic_english."
            )
        tokens = tokenizer.vocab() if callable(tokenizer.vocab) else tokenizer.vocab

        def texts() -> Any:
            for batch in train.select_columns(["text"]).iter(batch_size=1000):
                yield from ("" if text is None else text for text in batch["text"])

        return Vocabulary(
            tokens=list(tokens),
            pad_id=tokenizer.pad_id,
            texts=texts,
            tokenize=tokenizer.tokenize,
            tokenizer_fingerprint=tokenizer.fingerprint(),
            seed=ctx.seed,
            out_dir=ctx.out_dir,
            tracker=ctx.tracker,
            related_texts=getattr(self, "_related", None),
        )

    def train_batches(self, epoch: int, start: int) -> EpochBatches:
        """Length-bucketed batches, this process's rows of each, from step ``start`` on."""
        job = self.ctx.job
        order = self._epoch_order(epoch)
        todo = [rows for rows in order[start:] if len(rows) >= job.world_size]  # no empty shard
        shards = iterate_batches(
            self.splits["train"], [job.shard(rows) for rows in todo], self.ctx.device
        )
        batches = ((batch, len(rows)) for rows, batch in zip(todo, shards, strict=True))
        return EpochBatches(len(order), batches)

    def _epoch_order(self, epoch: int) -> list[Tensor]:
        """Epoch ``epoch``'s batches: seeded and replayable (``EpochOrders``), so the same
        on every process and on resume."""
        if getattr(self, "_orders", None) is None:
            trainer = self.ctx.trainer
            lengths = self.splits["train"].lengths
            self._orders = EpochOrders(
                lengths, trainer.batch_size, trainer.bucket_size, self.ctx.seed
            )
        return self._orders(epoch)

    def probe_batch(self, rows: int) -> Any:
        """The first ``rows`` validation rows as one batch that ``loss`` takes: the fixed
        batch of ``trainer.diagnostics``."""
        split = self.splits["validation"]
        index = torch.arange(min(rows, len(split)))
        return next(iterate_batches(split, [index], self.ctx.device)), len(index)

    def loss(self, model: nn.Module, batch: Any, state: Any) -> tuple[Tensor, int, Any]:
        shard, global_rows = batch
        logits = model(shard.ids, shard.mask)
        smoothing = self.ctx.task.label_smoothing
        if smoothing:
            summed = F.cross_entropy(
                logits.float(), shard.labels, reduction="sum", label_smoothing=smoothing
            )
        else:  # the call as it always was (bit-identical)
            summed = F.cross_entropy(logits.float(), shard.labels, reduction="sum")
        return summed, global_rows, None

    def train_metrics(self, mean_loss: float) -> dict[str, float]:
        return {"train/loss": mean_loss}

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.splits:
            return {}
        result = evaluate(
            model,
            self.splits[split],
            batch_size=self.ctx.trainer.eval_batch_size,
            device=self.ctx.device,
            num_classes=len(self.labels),
            autocast_dtype=self.ctx.amp,
        )
        self.evaluations[split] = result
        return {"loss": result.loss, "accuracy": result.accuracy, "f1": result.f1}

    def describe_epoch(self, metrics: dict[str, float]) -> str:
        names = ("train/loss", "val/loss", "val/accuracy", "val/f1")
        return "  ".join(f"{name} {metrics[name]:.4f}" for name in names)

    def checkpoint_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"labels": self.labels}
        if getattr(self, "data_fingerprint", None):
            extra["data"] = self.data_fingerprint
        if self.tokenizer_dir is not None:
            extra["tokenizer_dir"] = str(self.tokenizer_dir.resolve())
        return extra

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        pass

    def finish(self, ctx: RunContext, model: nn.Module, fitted: Any, test: dict) -> None:
        """Learning curves, confusion matrix, classification and error reports, the model."""
        from pipeline.reporting.plots import confusion_matrix_plot, learning_curves
        from pipeline.reporting.reports import write_classification_reports

        plots = ctx.out_dir / "plots"
        plots.mkdir(exist_ok=True)
        learning_curves(fitted.history, plots / "learning_curves.png")
        confusion = self.evaluations["test"].confusion
        confusion_matrix_plot(confusion, self.labels, plots / "confusion_matrix.png")
        write_classification_reports(
            model,
            self.splits["validation"],
            self.texts["validation"]["text"],
            confusion,
            self.labels,
            self.tokenizer,
            ctx.device,
            ctx.out_dir,
            batch_size=ctx.trainer.eval_batch_size,
        )
        ctx.tracker.log_artifact(ctx.out_dir / "reports", "reports")
        ctx.tracker.log_artifact(plots, "plots")
        if ctx.tracking.log_model:  # raw text in, labels out: see inference/pyfunc_model.py
            from pipeline.inference.pyfunc_model import log_classifier_model

            ctx.tracker.log_model_with(
                log_classifier_model,
                fitted.best_path or fitted.last_path,
                self.tokenizer_dir,
                self.labels,
                register_as=ctx.tracking.register_as,
            )
