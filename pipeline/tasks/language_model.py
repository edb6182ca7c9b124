"""Language modelling (``task=lm``): predict the next token of a text stream.

Corpus -> tokenizer -> ``batch_size`` parallel streams read in windows of ``trainer.bptt``
steps, the recurrent state carried across windows and detached between them (truncated
back-propagation through time); loss per target token, perplexity, bits per character.
Under torchrun each process reads its share of the streams (rows ``rank::world_size``) and
carries their state; the step is the one a single process takes on all of them.

Note on learning rates: Zaremba et al. sum the loss over the ``bptt`` steps and average it
over the batch; the mean per token used here is that divided by ``bptt``, so their lr = 1
and max-norm 5 correspond to ``optimizer.lr=20 trainer.grad_clip=0.25`` at bptt 20 (as in
PyTorch's word_language_model example).
"""

from __future__ import annotations

import json
from itertools import islice, pairwise
from typing import Any

from torch import Tensor, nn

from pipeline.contracts import EpochBatches
from pipeline.data.placement import keep_on_device
from pipeline.data.streams import (
    Streams,
    jittered_bounds,
    make_streams,
    num_windows,
    windows,
)
from pipeline.errors import ConfigError
from pipeline.tasks.lm_eval import (
    LMEvaluation,
    activation_penalty,
    evaluate_lm,
    lm_metrics,
    window_loss,
)
from pipeline.training.context import RunContext


class LanguageModelTask:
    metric_names = ("train/loss", "train/perplexity", "train/bpc", "train/lr", "val/loss")
    metric_names += ("val/perplexity", "val/bpc")
    unit = "tokens"
    step_name = "window"  # a training step reads one window of the streams
    noun, predicts = "language-model", "tokens"  # what its checkpoints are, and do
    usage = "generate model={path} prompt=..."  # the sub-command that uses them

    def __init__(self, cfg: Any) -> None:
        from pipeline.data.corpus_config import to_corpus_config
        from pipeline.data.documents import texts_config

        self.texts_cfg, self.doc_end, self.transductive = None, "", False
        self.extra = None  # data.corpus_extra's documents, once loaded
        if cfg.data.get("type") == "corpus":
            self.corpus_cfg = to_corpus_config(cfg.data)
            self.reverse = self.corpus_cfg.reverse
        elif cfg.data.get("type") is None and "label_column" in cfg.data:
            self.texts_cfg, self.doc_end = texts_config(cfg)  # data.as_corpus
            self.reverse = self.texts_cfg.reverse
        else:
            raise ConfigError(
                f"data={cfg.data.name} is not text, but task=lm needs a text corpus: "
                "data=timemachine, tiny_shakespeare, ptb or wikitext2 (or a labelled data set's "
                "texts: data=imdb data.as_corpus=train)."
            )
        self.evaluations: dict[str, LMEvaluation] = {}

    @classmethod
    def from_ids(
        cls, ctx: RunContext, ids: dict[str, Tensor], pad_id: int = 0, char_level: bool = False
    ) -> LanguageModelTask:
        """A task over token streams already in memory (tests, notebooks): no corpus config,
        no tokenizer, no samples; ``prepare`` is not called."""
        task = cls.__new__(cls)
        task.ctx, task.ids, task.char_level, task.evaluations = ctx, ids, char_level, {}
        task.reverse, task.texts_cfg, task.transductive, task.extra = False, None, False, None
        task.tokenizer, task.tokenizer_dir = _NoTokenizer(pad_id), None
        task._make_streams()
        return task

    def prepare(self, ctx: RunContext) -> None:
        from pipeline.data import fingerprint
        from pipeline.data.documents import (
            check_resumed_direction,
            document_ids,
            end_id,
            write_stream_record,
        )
        from pipeline.data.tokenize import tokenize

        self.ctx, trainer, job = ctx, ctx.trainer, ctx.job
        if trainer.batch_size < job.world_size:
            raise ConfigError(
                f"trainer.batch_size={trainer.batch_size} streams cannot be shared by "
                f"{job.world_size} processes: use a batch size of at least {job.world_size}."
            )
        if not job.is_main:
            job.barrier()  # rank 0 reads and tokenizes first; the others then hit its cache
        corpus = self._load(ctx)
        self.data_fingerprint = fingerprint.fingerprint(corpus.splits, corpus.source, None)
        if self.reverse:
            self.data_fingerprint["reverse"] = True
        fingerprint.check_resumed(ctx.resumed, self.data_fingerprint, ctx.checkpoint_dir)
        check_resumed_direction(ctx.resumed, self.reverse, ctx.checkpoint_dir)
        self.tokenizer = fingerprint.tokenizer_for(
            ctx.cfg.tokenizer, corpus.splits["train"], ctx.resumed, ctx.checkpoint_dir
        )
        self.data_fingerprint["tokenizer"] = fingerprint.tokenizer_identity(self.tokenizer)
        tokenized = tokenize(corpus.splits, self.tokenizer, None)  # whole texts: no max_length
        if job.is_main:
            job.barrier()
        self.char_level = getattr(self.tokenizer, "separator", " ") == ""
        end = end_id(self.tokenizer, self.char_level)
        self.ids = {
            name: document_ids(split, self.reverse, end) for name, split in tokenized.splits.items()
        }
        self._print_data(corpus.source, tokenized)
        self.tokenizer_dir = ctx.out_dir / "tokenizer"
        self.tokenizer.save(self.tokenizer_dir)
        write_stream_record(self.tokenizer_dir, self.stream())
        ctx.tracker.log_artifact(self.tokenizer_dir, "tokenizer")
        self._make_streams()
        self.prompt = ctx.task.sample_prompt or _default_prompt(
            self.tokenizer, self.ids["validation"], self.char_level
        )

    def _load(self, ctx: RunContext) -> Any:
        """The corpus, or a labelled data set's texts (``data.as_corpus``); a transductive
        run (its train split holds the test texts) is said and tagged."""
        from pipeline.data.corpus import load_corpus
        from pipeline.data.documents import load_texts

        if self.texts_cfg is None:
            return load_corpus(self.corpus_cfg, seed=ctx.seed)
        corpus, self.transductive, self.extra = load_texts(self.texts_cfg, ctx.seed, self.doc_end)
        if self.extra.sources:
            _record_extra(ctx, self.extra, self.texts_cfg.name, self.transductive)
        if self.transductive:
            print(
                "transductive: data.as_corpus=[train,test]: the language model trains on the "
                "test texts too (their perplexity is no held-out measure)",
                flush=True,
            )
            ctx.tracker.set_tags({"transductive": "true"})
        return corpus

    def stream(self) -> dict[str, Any]:
        """How the token stream was made: recorded in checkpoints and the tokenizer folder."""
        from pipeline.data.documents import stream_record

        return stream_record(self.reverse, self.texts_cfg, self.transductive, self.extra)

    def build_model(self, ctx: RunContext) -> nn.Module:
        from pipeline.model.assembly import build_language_model, init_uniform

        model = build_language_model(ctx.cfg, self.tokenizer.vocab_size, self.tokenizer.pad_id)
        if ctx.task.init_range:
            init_uniform(model, ctx.task.init_range)
        return model

    def _make_streams(self) -> None:
        """This process's training streams, and the targets of each whole window (every
        process's: the step's mean is over them), counted once on the host."""
        trainer, job = self.ctx.trainer, self.ctx.job
        streams = make_streams(self.ids["train"], trainer.batch_size, self.tokenizer.pad_id)
        self.streams = _share(streams, job.rank, job.world_size)
        starts = range(0, streams.mask.size(1), trainer.bptt)
        self.window_targets = [int(streams.mask[:, s : s + trainer.bptt].sum()) for s in starts]
        self.column_targets = [0, *streams.mask.sum(0).cumsum(0).tolist()]  # bptt_jitter
        self.eval_ids = {name: ids for name, ids in self.ids.items() if name != "train"}
        nbytes = self.streams.nbytes + sum(ids.numel() * 8 for ids in self.eval_ids.values())
        if keep_on_device(trainer.data_on_device, self.ctx.device, nbytes):
            self.streams = self.streams.to(self.ctx.device)
            self.eval_ids = {k: v.to(self.ctx.device) for k, v in self.eval_ids.items()}

    def _print_data(self, source: str, tokenized: Any) -> None:
        sizes = ", ".join(f"{k} {v.numel():,} tokens" for k, v in self.ids.items())
        kind = "characters" if self.char_level else "words"
        done = (
            "tokens from cache"
            if tokenized.rows_tokenized == 0
            else f"tokenized in {tokenized.seconds:.1f}s"
        )
        vocabulary = f"vocabulary {self.tokenizer.vocab_size:,} ({kind})"
        if self.reverse:
            vocabulary += "; each document reversed (a backward model)"
        print(f"data: {source}: {sizes}; {vocabulary}; {done}", flush=True)

    def train_batches(self, epoch: int, start: int) -> EpochBatches:
        """The same windows every epoch (streams are read in order), from window ``start``;
        with ``trainer.bptt_jitter``, this epoch's lengths (drawn from the run's seed and
        the epoch: the same ones on resume)."""
        trainer = self.ctx.trainer
        if not trainer.bptt_jitter:
            steps = num_windows(self.streams, trainer.bptt)
            batches = zip(
                islice(windows(self.streams, trainer.bptt, self.ctx.device), start, None),
                self.window_targets[start:],
                strict=True,
            )
            return EpochBatches(steps, batches)
        columns = len(self.column_targets) - 1
        bounds = jittered_bounds(columns, trainer.bptt, trainer.bptt_jitter, self.ctx.seed, epoch)
        todo = bounds[start:]
        targets = [self.column_targets[b] - self.column_targets[a] for a, b in pairwise(todo)]
        batches = zip(
            windows(self.streams, trainer.bptt, self.ctx.device, todo), targets, strict=True
        )
        return EpochBatches(len(bounds) - 1, batches)

    def lr_scale(self, batch: Any) -> float:
        """This step's lr factor: the window's length / bptt (1 without bptt_jitter)."""
        return batch[0].lr_scale

    def loss(self, model: nn.Module, batch: Any, state: Any) -> tuple[Tensor, int, Any]:
        window, targets = batch
        alpha, beta = self.ctx.trainer.ar_alpha, self.ctx.trainer.tar_beta
        if not (alpha or beta):
            summed, state = window_loss(model, window, state)
            return summed, targets, state
        summed, state, sequence = window_loss(model, window, state, with_sequence=True)
        # The loop steps on summed * world / targets: this adds the penalty (this process's
        # mean) to the gradient, while the value, hence train/loss, stays the plain loss.
        scaled = activation_penalty(sequence, window.mask, alpha, beta)
        scaled = scaled * (targets / self.ctx.job.world_size)
        return summed + (scaled - scaled.detach()), targets, state

    def train_metrics(self, mean_loss: float) -> dict[str, float]:
        return {f"train/{k}": v for k, v in lm_metrics(mean_loss, self.char_level).items()}

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.ids:
            return {}
        result = evaluate_lm(
            model,
            self.eval_ids.get(split, self.ids[split]),
            batch_size=self.ctx.trainer.eval_batch_size,
            bptt=self.ctx.trainer.bptt,
            pad_id=self.tokenizer.pad_id,
            device=self.ctx.device,
            autocast_dtype=self.ctx.amp,
        )
        self.evaluations[split] = result
        return lm_metrics(result.loss, self.char_level)

    def describe_epoch(self, metrics: dict[str, float]) -> str:
        line = f"train/perplexity {metrics['train/perplexity']:.2f}  "
        line += f"val/perplexity {metrics['val/perplexity']:.2f}"
        if self.char_level:
            line += f"  val/bpc {metrics['val/bpc']:.3f}"
        return line + f"  lr {metrics['train/lr']:.4g}"

    def checkpoint_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if getattr(self, "data_fingerprint", None):
            extra["data"] = self.data_fingerprint
        if self.tokenizer_dir is not None:
            extra["tokenizer_dir"] = str(self.tokenizer_dir.resolve())
        extra["stream"] = self.stream()
        return extra

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        """A text sample from this epoch's model, logged under ``samples/``."""
        if not self.ctx.task.sample_tokens or not self.ctx.job.is_main:
            return
        samples = self.ctx.out_dir / "samples"
        samples.mkdir(exist_ok=True)
        path = samples / f"epoch_{epoch:03d}.txt"
        path.write_text(self.sample(model, top_k=0) + "\n", encoding="utf-8")
        self.ctx.tracker.log_artifact(path, "samples")
        model.train()

    def sample(self, model: nn.Module, **options: Any) -> str:
        from pipeline.model.sampling import sample

        return sample(
            model,
            self.tokenizer,
            self.prompt,
            max_tokens=self.ctx.task.sample_tokens,
            temperature=0.8,
            seed=self.ctx.seed,
            device=self.ctx.device,
            **options,
        )

    def finish(self, ctx: RunContext, model: nn.Module, fitted: Any, test: dict) -> None:
        """The test perplexity line, learning curves, history, a final sample, the model."""
        from pipeline.reporting.plots import learning_curves

        if "test" in self.evaluations:
            result = self.evaluations["test"]
            print(
                f"test: perplexity {result.perplexity:.2f} over {result.tokens:,} tokens",
                flush=True,
            )
        plots = ctx.out_dir / "plots"
        plots.mkdir(exist_ok=True)
        learning_curves(fitted.history, plots / "learning_curves.png")
        ctx.tracker.log_artifact(plots, "plots")
        (ctx.out_dir / "history.json").write_text(json.dumps(fitted.history, indent=1))
        if ctx.task.sample_tokens:
            final = self.sample(model)
            print(f"sample (best checkpoint, temperature 0.8):\n{final}\n", flush=True)
        if ctx.tracking.log_model and self.tokenizer_dir is not None:
            # weights, config and tokenizer, no pickle: see inference/pyfunc_model.py
            from pipeline.inference.pyfunc_model import log_language_model

            ctx.tracker.log_model_with(
                log_language_model,
                fitted.best_path or fitted.last_path,
                self.tokenizer_dir,
                register_as=ctx.tracking.register_as,
            )


class _NoTokenizer:
    """Stands in for a tokenizer where only the padding id is known."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id


def _share(streams: Streams, rank: int, world: int) -> Streams:
    """This process's streams: rows ``rank::world`` (all of them in a single process)."""
    if world == 1:
        return streams
    return Streams(*(part[rank::world] for part in (streams.inputs, streams.targets, streams.mask)))


def _default_prompt(tokenizer: Any, validation: Tensor, char_level: bool) -> str:
    """The first few tokens of the validation split: a prompt the model has not trained on."""
    head = validation[: 20 if char_level else 5].tolist()
    eos = getattr(tokenizer, "eos_id", None)
    head = [i for i in head if i != eos] or head
    return tokenizer.decode(head).strip() or tokenizer.decode(head)


def _record_extra(ctx: RunContext, extra: Any, data: str, transductive: bool) -> None:
    """Say, and record as run params, what ``data.corpus_extra`` added to the train stream
    and how many of its documents were dropped for holding an evaluation text."""
    held = "validation" if transductive else "validation or test"
    print(
        f"corpus_extra: added to the train stream: {extra.listing()} documents; dropped "
        f"{extra.dropped:,} that are or contain a {held} text of data={data} (the "
        "language model never reads the classifier's evaluation texts)",
        flush=True,
    )
    ctx.tracker.log_params(
        {"corpus_extra_documents": extra.counts(), "corpus_extra_dropped": extra.dropped}
    )
