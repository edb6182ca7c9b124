"""The contracts between the core and its plugins.

Shapes: B = batch, T = time steps, D = input features, H = encoder features.
A mask is mandatory everywhere: ``mask[b, t]`` is True for a real token, False for padding.
Padding is always on the right, so a row's real tokens are ``x[b, :length[b]]``.
Padding never changes any output of a real token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from pipeline.registry import ComponentConfig  # noqa: F401  (re-exported for plugins)


@dataclass
class EncoderOutput:
    """What an encoder returns."""

    sequence: Tensor  # [B, T, H]: every step (Keras' return_sequences)
    final: Tensor | None = None  # [B, H]: true last states (h_n; both directions for bi-RNNs)
    state: Any = None  # recurrent state to carry across batches (stateful LM)
    pooled: Tensor | None = None  # [B, H]: a summary the encoder pools itself (attention)
    attention: Tensor | None = None  # [B, T]: the weights behind ``pooled`` (0 at padding)


@dataclass
class RecurrentTrace:
    """One layer and direction of a recurrent encoder, step by step."""

    layer: int  # 0 = the bottom layer
    direction: int  # 0 = forward, 1 = backward
    quantities: dict[str, Tensor]  # name -> [B, T, H], in the input's time order; 0 at padding
    gates: tuple[str, ...]  # the names in quantities that are sigmoid gates, in (0, 1)


@dataclass
class Vocabulary:
    """What an embedding built from word vectors needs of the run (``uses_vocabulary``):
    the fitted vocabulary, the training texts as words, and where to cache, write and log.
    Built by the task at training time only; a model rebuilt from a checkpoint gets none."""

    tokens: list[str]  # the vocabulary in id order
    pad_id: int
    texts: Callable[[], Iterator[str]]  # the training texts, read afresh on each call
    tokenize: Callable[[str], list[str]]  # the run's tokenizer, text -> words
    tokenizer_fingerprint: str
    seed: int
    out_dir: Path
    tracker: Any  # log_artifact, log_metrics, set_tags
    #: Unlabelled texts related to the data (``data.related_texts``), read on call: more
    #: text for word vectors trained on the run's texts (``embedding=learned``'s word2vec).
    related_texts: Callable[[], list[str]] | None = None


class Embedding(nn.Module):
    """Token ids [B, T] -> vectors [B, T, output_dim].

    An embedding with ``uses_vocabulary = True`` also takes ``vocabulary=`` (a
    :class:`Vocabulary`, or None when rebuilt from a checkpoint whose weights it then loads);
    so does one whose config has ``uses_vocabulary`` true (``embedding=learned`` with
    ``init=word2vec``): :func:`uses_vocabulary`.

    An embedding with ``uses_characters = True`` reads each word's characters too: it is
    built as ``cls(config, vocab_size, pad_id, num_chars=N)`` and called as
    ``embedding(ids, chars)``, ``chars`` int64 [B, T, L]: the character ids of each word
    (0 = padding, of characters and of padded words; 1 = an unknown character; ids < N),
    L = the batch's longest word, cut at ``config.max_word_length`` (24 when it has none).
    Only ``task=tagging`` supplies characters so far; the other tasks refuse such an embedding.
    """

    output_dim: int
    uses_vocabulary: bool = False
    uses_characters: bool = False

    def __init__(self, config: Any, vocab_size: int, pad_id: int) -> None:
        super().__init__()
        self.config = config

    @property
    def weight(self) -> Tensor | None:
        """The [vocab_size, output_dim] lookup table, for weight tying; None if there is none."""
        return None


def uses_vocabulary(embedding_cls: type, config: Any) -> bool:
    """Whether this embedding, with this config, is built with ``vocabulary=``: its class
    always is (``uses_vocabulary = True``), or its config asks for it (a property)."""
    return bool(
        getattr(embedding_cls, "uses_vocabulary", False)
        or getattr(config, "uses_vocabulary", False)
    )


class Encoder(nn.Module):
    """A sequence -> sequence contextualizer: x [B, T, input_dim] + mask -> [B, T, output_dim].

    ``causal`` is True when step t of ``sequence`` depends only on x[:, :t + 1] (a left-to-
    right RNN; not a bidirectional one, nor attention or convolutions over the whole row).
    Language models need it: they refuse an encoder that would read the tokens it predicts.
    A causal encoder that returns ``state`` must accept it back as ``state=`` to continue the
    same sequences (stateful LM training and generation).

    ``carries_state`` is set to True by the language model that builds the encoder (only a
    language model carries ``state``; a classifier never reads it). When True, the returned
    state must be exact at each row's last real token, even in a right-padded batch (never
    run on through padding); when False it may be anything, None included, so an encoder
    may skip that work. An encoder may ignore the flag and always be exact.

    ``traceable`` is True when ``trace(x, mask)`` shows the encoder's insides, step by step:
    one :class:`RecurrentTrace` per layer and direction (bottom layer first, forward before
    backward), in eval semantics (no dropout), whose ``hidden`` equals that direction's
    half of ``sequence`` at real tokens (``python -m pipeline inspect`` draws them).
    Quantity names: LSTM ``input``, ``forget``, ``output`` (gates), ``candidate``, ``cell``,
    ``hidden``; GRU ``reset``, ``update`` (gates), ``candidate``, ``hidden``; RNN ``hidden``.
    """

    input_dim: int
    output_dim: int
    causal: bool = False
    carries_state: bool = False
    traceable: bool = False

    def __init__(self, config: Any, input_dim: int) -> None:
        super().__init__()
        self.config = config
        self.input_dim = input_dim

    def forward(self, x: Tensor, mask: Tensor, state: Any = None) -> EncoderOutput:
        raise NotImplementedError

    def trace(self, x: Tensor, mask: Tensor) -> list[RecurrentTrace]:
        """Each layer's and direction's quantities over x [B, T, input_dim] (``traceable``)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not expose its insides (traceable is False): it has "
            "no trace(x, mask)."
        )


class Pooler(nn.Module):
    """An encoder's output + mask -> one vector per sequence [B, output_dim]."""

    output_dim: int

    def __init__(self, config: Any, input_dim: int) -> None:
        super().__init__()
        self.config = config
        self.input_dim = input_dim
        self.output_dim = input_dim

    def forward(self, output: EncoderOutput, mask: Tensor) -> Tensor:
        raise NotImplementedError


class Head(nn.Module):
    """Features -> logits: [B, input_dim] -> [B, num_outputs] for classifiers, or
    [B, T, input_dim] -> [B, T, vocab_size] for language models."""

    def __init__(self, config: Any, input_dim: int, num_outputs: int) -> None:
        super().__init__()
        self.config = config
        self.input_dim = input_dim
        self.num_outputs = num_outputs


@runtime_checkable
class Tokenizer(Protocol):
    """Text <-> ids. Fitted on the train split only, saved with the run.

    Optional, for input already split into words (``task=tagging`` requires it):
    ``encode_words(sentences: list[list[str]]) -> list[list[int]]``, exactly one id per
    given word (never re-split nor merged; an unknown word -> the unknown id), and
    ``fit_words(sentences)`` to fit the vocabulary on such words (else ``fit`` gets each
    sentence's words joined by spaces).
    """

    def fit(self, texts: Any) -> None:
        """Learn the vocabulary from an iterable of strings."""

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids for each text (no padding, no truncation)."""

    def decode(self, ids: list[int]) -> str:
        """Text for a sequence of ids (specials dropped)."""

    def save(self, directory: str | Path) -> None:
        """Write everything needed to ``load`` it back into ``directory``."""

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """Read a tokenizer written by ``save``."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    def fingerprint(self) -> str:
        """A stable hash of the fitted state (keys the tokenization cache)."""


def lengths_of(mask: Tensor) -> Tensor:
    """True lengths [B] (int64) of a right-padded mask [B, T]."""
    return mask.sum(dim=1, dtype=torch.long)


@dataclass
class EpochBatches:
    """One epoch's training batches: how many steps it has, and the batches from the step
    asked for on (a resumed epoch skips those done)."""

    steps: int
    batches: Iterator[Any]


@runtime_checkable
class Task(Protocol):
    """What differs between classification, language modelling, tagging...: the one training
    loop (``pipeline.training.loop.fit``) and the one run (``pipeline.run.runner.run``) ask
    the task for everything that depends on what the model predicts.

    A task is built from the run's composed config (``__init__(cfg)``: check its own sections
    there, before any data is read), then prepared with the run context. Optionally, a task
    may define ``suggested_settings() -> list[pipeline.config.suggestions.Suggestion]``:
    settings chosen from the data it prepared (more epochs for a small training set), which
    the run applies where the user left the default, before the model is built. Settings of
    other groups a kind trains best with whatever the data belong on its config (a
    ``TaskConfig`` subclass's ``suggested_settings()``, ``pipeline.tasks.configs``).
    """

    metric_names: tuple[str, ...]  # per-epoch metrics: trainer.monitor must name one
    unit: str  # what a training step counts ("samples", "tokens"): throughput and progress
    step_name: str  # what a step is called in messages ("step"; "window" for streams)

    def prepare(self, ctx: Any) -> None:
        """Read and tokenize the data; fit and save the tokenizer."""

    def build_model(self, ctx: Any) -> nn.Module:
        """The model, initialised (the run seeds torch just before)."""

    def train_batches(self, epoch: int, start: int) -> EpochBatches:
        """Epoch ``epoch``'s batches from step ``start`` (0-based), this process's share: the
        same batches whenever it is asked (that is what makes resume exact)."""

    def loss(self, model: nn.Module, batch: Any, state: Any) -> tuple[Tensor, int, Any]:
        """(summed loss over this process's items, items in the whole global batch, carried
        state): the loop steps on ``summed * world_size / items``."""

    def train_metrics(self, mean_loss: float) -> dict[str, float]:
        """The epoch's ``train/*`` metrics from its mean training loss."""

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics of ``model`` on ``split`` (unprefixed: ``loss``, ``accuracy``...); empty
        when the data has no such split."""

    def describe_epoch(self, metrics: dict[str, float]) -> str:
        """The epoch line's metrics, e.g. ``train/loss 0.41  val/accuracy 0.86``."""

    def checkpoint_extra(self) -> dict[str, Any]:
        """What a checkpoint needs besides the weights to be used later (labels...)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        """After each epoch's checkpoint (samples from a language model...)."""

    def finish(self, ctx: Any, model: nn.Module, fitted: Any, test: dict[str, float]) -> None:
        """With the best weights loaded: reports, plots, the logged model."""
