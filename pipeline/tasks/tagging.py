"""Sequence tagging (``task=tagging``): one tag per word (part of speech, named entities).

Tagged sentences (already split into words) -> the tokenizer maps each word to one id
(``encode_words``: never re-split nor merged) -> length-bucketed batches -> embedding (which
may also read each word's characters) -> encoder (``sequence``) -> tagger head; the loss is
summed over real words, padding never counts; token accuracy, macro-F1 over tags, accuracy on
words unseen in training, span F1 for BIO tags; a per-tag report and confusion matrix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.contracts import EpochBatches
from pipeline.data.batching import EpochOrders
from pipeline.errors import ConfigError, DataError
from pipeline.tasks.tagging_eval import (
    TagBatch,
    TagEvaluation,
    TaggedSplit,
    encode_split,
    evaluate_tagger,
    forward,
    is_bio,
    iterate_tag_batches,
    span_scores,
    token_loss,
)
from pipeline.training.context import RunContext

#: Span scores, for BIO tags only (a user's named-entity files).
SPAN_METRICS = ("val/span_precision", "val/span_recall", "val/span_f1")


class TaggingTask:
    metric_names = ("train/loss", "train/lr", "val/loss", "val/accuracy", "val/f1")
    metric_names += ("val/oov_accuracy",)
    unit = "tokens"
    step_name = "step"
    noun, predicts = "tagging", "tags"  # what its checkpoints are, and do
    usage = 'predict model={path} text="..."'

    def __init__(self, cfg: Any) -> None:
        from pipeline.data.tagged import check_split_keys, to_tagged_config

        kind = cfg.data.get("type")
        if kind not in ("tagged", None) or (kind is None and cfg.data.name != "files"):
            raise ConfigError(
                f"data={cfg.data.name} is not tagged data; task=tagging reads sentences with a "
                "tag per word: data=ud_ewt, or data=files data.train=your.conllu (CoNLL-U or "
                "CoNLL-2003 style)."
            )
        self.data_cfg = to_tagged_config(cfg.data)
        check_split_keys(self.data_cfg)
        if not self.data_cfg.local_splits and not self.data_cfg.hub:  # the user's: BIO maybe
            self.metric_names = TaggingTask.metric_names + SPAN_METRICS
        self.evaluations: dict[str, TagEvaluation] = {}
        self.tokenizer_dir = self.characters = None

    def prepare(self, ctx: RunContext) -> None:
        from pipeline.data import fingerprint
        from pipeline.data.tagged import describe_sizes, load_tagged

        self.ctx, self._orders = ctx, None
        data = load_tagged(self.data_cfg)
        self.sentences, self.source = data.splits, data.source
        print(f"data: {data.source}: {describe_sizes(data)}; {len(data.tags)} tags", flush=True)
        if len(data.tags) < 2:
            raise DataError(f"The training data has a single tag ({data.tags}); need >= 2.")
        self.train_tags = data.tags
        self._check_spans(ctx)
        self.tags = data.tags + self._unseen_tags(data)
        self.data_fingerprint = _fingerprint(data.splits, data.source, self.tags)
        fingerprint.check_resumed(ctx.resumed, self.data_fingerprint, ctx.checkpoint_dir)
        self.tokenizer = self._tokenizer(ctx, data.splits["train"])
        self.data_fingerprint["tokenizer"] = fingerprint.tokenizer_identity(self.tokenizer)
        self.tokenizer_dir = ctx.out_dir / "tokenizer"
        self.tokenizer.save(self.tokenizer_dir)
        (self.tokenizer_dir / "labels.json").write_text(json.dumps(self.tags))
        from pipeline.inference.tagger import save_train_words  # OOV words, for evaluate

        save_train_words((words for words, _ in data.splits["train"]), self.tokenizer_dir)
        if self._reads_characters(ctx):
            from pipeline.data.characters import Characters

            train_words = (w for words, _ in data.splits["train"] for w in words)
            self.characters = Characters.fit(train_words)
            self.characters.save(self.tokenizer_dir)
        ctx.tracker.log_artifact(self.tokenizer_dir, "tokenizer")
        self.splits = {name: self._encode(s) for name, s in data.splits.items()}
        self._unk_chances(ctx.task.word_dropout)
        print(f"tokenized: vocabulary {self.tokenizer.vocab_size:,} words", flush=True)

    def _check_spans(self, ctx: RunContext) -> None:
        """Span metrics exist for BIO tags only: monitoring one on other tags is refused."""
        if is_bio(self.train_tags):
            self.metric_names = TaggingTask.metric_names + SPAN_METRICS
            return
        self.metric_names = TaggingTask.metric_names
        if ctx.trainer.monitor in SPAN_METRICS:
            raise ConfigError(
                f"trainer.monitor={ctx.trainer.monitor}: span scores need BIO tags (O, B-X, "
                f"I-X), and these are not ({', '.join(self.train_tags[:5])}...). Monitor "
                "val/accuracy or val/f1."
            )

    def _unk_chances(self, alpha: float) -> None:
        """``task.word_dropout`` = a: each id's chance a / (a + count) to become <unk> in
        training (0 for padding and <unk> itself); None when off."""
        self.unk_chance = None
        if not alpha:
            return
        train = self.splits["train"]
        ids = train.ids[train.tags >= 0]
        counts = torch.bincount(ids, minlength=self.tokenizer.vocab_size).double()
        chance = alpha / (alpha + counts)
        chance[[self.tokenizer.pad_id, getattr(self.tokenizer, "unk_id", 1)]] = 0.0
        self.unk_chance = chance.float()

    def _drop_words(self, batch: TagBatch) -> TagBatch:
        """The batch with rare words replaced by <unk> (``task.word_dropout``; training)."""
        chance = self.unk_chance.to(batch.ids.device)[batch.ids]
        drop = torch.rand(chance.shape, device=chance.device) < chance
        unk = getattr(self.tokenizer, "unk_id", 1)
        return replace(batch, ids=batch.ids.masked_fill(drop, unk))

    def _unseen_tags(self, data: Any) -> list[str]:
        """Tags of validation / test that train never has: kept (they count as errors)."""
        seen = set(data.tags)
        unseen = sorted({t for n in ("validation", "test") for _, ts in data.splits[n] for t in ts})
        unseen = [t for t in unseen if t not in seen]
        if unseen:
            print(f"note: tags never seen in training count as errors: {unseen}", flush=True)
        return unseen

    def _tokenizer(self, ctx: RunContext, train: list[Any]) -> Any:
        """The word tokenizer fitted on train's words (the run's own when resumed)."""
        from pipeline.data.tokenize import load_tokenizer, tokenizer_config
        from pipeline.registry import tokenizers

        saved = ctx.checkpoint_dir / "tokenizer"
        if ctx.resumed is not None and (saved / "tokenizer_config.json").is_file():
            return load_tokenizer(saved)
        pretrained = getattr(ctx.init_from, "tokenizer", None)  # model.init_from: the LM's
        config = tokenizer_config(ctx.cfg.tokenizer)
        tokenizer = pretrained
        if tokenizer is None:
            tokenizer = tokenizers.get(str(ctx.cfg.tokenizer.name)).cls(config)
        if not hasattr(tokenizer, "encode_words"):
            raise ConfigError(
                f"tokenizer={ctx.cfg.tokenizer.name} cannot map given words to ids (it has no "
                "encode_words), so it could split or merge words; task=tagging needs one id "
                "per word: use tokenizer=word."
            )
        words = [words for words, _ in train]
        if pretrained is not None:
            return tokenizer  # its vocabulary is the language model's, not fitted again
        if hasattr(tokenizer, "fit_words"):
            tokenizer.fit_words(words)
        else:
            tokenizer.fit(" ".join(sentence) for sentence in words)
        return tokenizer

    def _reads_characters(self, ctx: RunContext) -> bool:
        from pipeline import registry

        embedding = registry.embeddings.get(str(ctx.cfg.embedding.name)).cls
        return bool(getattr(embedding, "uses_characters", False))

    def _encode(self, sentences: list[Any]) -> TaggedSplit:
        """Ids, tag ids and OOV flags of a split (and its words' characters, if read)."""
        index = {tag: i for i, tag in enumerate(self.tags)}
        train_forms = getattr(self, "_train_forms", None)
        if train_forms is None:
            self._train_forms = train_forms = {w for ws, _ in self.sentences["train"] for w in ws}
        cap = int(self.ctx.cfg.embedding.get("max_word_length", None) or 24)
        return encode_split(
            self.tokenizer,
            [ws for ws, _ in sentences],
            [[index[t] for t in ts] for _, ts in sentences],
            train_forms,
            self.characters,
            cap,
        )

    def build_model(self, ctx: RunContext) -> nn.Module:
        from pipeline.model.assembly import build_tagger

        num_chars = self.characters.size if self.characters is not None else None
        return build_tagger(
            ctx.cfg,
            self.tokenizer.vocab_size,
            self.tokenizer.pad_id,
            len(self.train_tags),
            num_chars=num_chars,
        )

    def train_batches(self, epoch: int, start: int) -> EpochBatches:
        """Length-bucketed batches of sentences, this process's rows, from step ``start``;
        each with the real words of the whole global batch (the loss's item count)."""
        job, train = self.ctx.job, self.splits["train"]
        order = self._epoch_order(epoch)
        todo = [rows for rows in order[start:] if len(rows) >= job.world_size]
        shards = iterate_tag_batches(train, [job.shard(rows) for rows in todo], self.ctx.device)
        words = (int(train.lengths[rows].sum()) for rows in todo)
        return EpochBatches(len(order), zip(shards, words, strict=False))

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

    def loss(self, model: nn.Module, batch: Any, state: Any) -> tuple[Tensor, int, Any]:
        shard, global_words = batch
        if getattr(self, "unk_chance", None) is not None and model.training:
            shard = self._drop_words(shard)
        return token_loss(forward(model, shard), shard), global_words, None

    def train_metrics(self, mean_loss: float) -> dict[str, float]:
        return {"train/loss": mean_loss}

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.splits or len(self.splits[split]) == 0:
            return {}
        result = evaluate_tagger(
            model,
            self.splits[split],
            batch_size=self.ctx.trainer.eval_batch_size,
            device=self.ctx.device,
            num_tags=len(self.tags),
            autocast_dtype=self.ctx.amp,
        )
        self.evaluations[split] = result
        metrics = result.metrics()
        if is_bio(self.train_tags):
            gold = [ts for _, ts in self.sentences[split]]
            guess = [[self.tags[i] for i in row] for row in result.predicted]
            metrics.update(span_scores(gold, guess))
        return metrics

    def describe_epoch(self, metrics: dict[str, float]) -> str:
        names = ("train/loss", "val/loss", "val/accuracy", "val/f1")
        return "  ".join(f"{name} {metrics[name]:.4f}" for name in names)

    def checkpoint_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"labels": self.tags, "num_outputs": len(self.train_tags)}
        if getattr(self, "data_fingerprint", None):
            extra["data"] = self.data_fingerprint
        if self.tokenizer_dir is not None:
            extra["tokenizer_dir"] = str(self.tokenizer_dir.resolve())
        if self.characters is not None:
            extra["num_chars"] = self.characters.size
        return extra

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        pass

    def finish(self, ctx: RunContext, model: nn.Module, fitted: Any, test: dict) -> None:
        """Learning curves, the test confusion matrix and per-tag report (and span report),
        the model."""
        from pipeline.reporting.plots import confusion_matrix_plot, learning_curves
        from pipeline.tasks.tagging_report import write_tag_reports

        plots, reports = ctx.out_dir / "plots", ctx.out_dir / "reports"
        plots.mkdir(exist_ok=True)
        learning_curves(fitted.history, plots / "learning_curves.png")
        split = "test" if "test" in self.evaluations else "validation"
        result = self.evaluations[split]
        confusion_matrix_plot(result.confusion, self.tags, plots / "confusion_matrix.png")
        gold = [ts for _, ts in self.sentences[split]]
        guess = [[self.tags[i] for i in row] for row in result.predicted]
        write_tag_reports(result, self.tags, reports, gold, guess, is_bio(self.train_tags))
        ctx.tracker.log_artifact(reports, "reports")
        ctx.tracker.log_artifact(plots, "plots")
        if ctx.tracking.log_model:  # raw sentences in, tags out: see inference/tagger_pyfunc.py
            from pipeline.inference.tagger_pyfunc import log_tagger_model

            ctx.tracker.log_model_with(
                log_tagger_model,
                fitted.best_path or fitted.last_path,
                self.tokenizer_dir,
                register_as=ctx.tracking.register_as,
            )


def _fingerprint(splits: dict[str, list[Any]], source: str, tags: list[str]) -> dict:
    """What a checkpoint records of its data (compared on resume): rows and a digest."""
    rows = {}
    for name, sentences in splits.items():
        digest = hashlib.sha256(json.dumps(sentences, ensure_ascii=False).encode()).hexdigest()
        rows[name] = {"rows": len(sentences), "sha256": digest}
    return {"source": source, "splits": rows, "labels": list(tags)}
