"""Build the model: embedding -> encoder -> pooler -> head, each from its registry.

Dimensions flow forward (the encoder's input is the embedding's output, and so on), so
configs never repeat them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from pipeline import registry
from pipeline.config.schemas import component_configs
from pipeline.contracts import uses_vocabulary
from pipeline.errors import ConfigError
from pipeline.model.mask_probe import warn_if_mask_ignored


class SequenceClassifier(nn.Module):
    """Token ids [B, T] + mask [B, T] -> class logits [B, C]."""

    def __init__(
        self, embedding: nn.Module, encoder: nn.Module, pooler: nn.Module, head: nn.Module
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder
        self.pooler = pooler
        self.head = head

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        x = self.embedding(ids)  # [B, T, E]
        output = self.encoder(x, mask)  # sequence [B, T, H]
        return self.head(self.pooler(output, mask))  # [B, H'] -> [B, C]


def build_model(
    cfg: Any, vocab_size: int, pad_id: int, num_classes: int, vocabulary: Any = None
) -> SequenceClassifier:
    """Instantiate the classifier described by the composed config ``cfg``.

    ``vocabulary`` (a ``contracts.Vocabulary``) goes to an embedding that reads word vectors
    (``uses_vocabulary``); a model rebuilt from a checkpoint passes none."""
    configs = component_configs(cfg)
    build = {g: registry.ALL[g].get(c.name) for g, c in configs.items()}
    embedding_entry = build["embedding"]
    refuse_characters(embedding_entry.cls, configs["embedding"].name)
    if uses_vocabulary(embedding_entry.cls, configs["embedding"]):
        embedding = embedding_entry.build(
            configs["embedding"], vocab_size, pad_id, vocabulary=vocabulary
        )
    else:
        embedding = embedding_entry.build(configs["embedding"], vocab_size, pad_id)
    encoder = build["encoder"].build(configs["encoder"], embedding.output_dim)
    warn_if_mask_ignored(encoder, configs["encoder"].name)
    pooler = build["pooler"].build(configs["pooler"], encoder.output_dim)
    head = build["head"].build(configs["head"], pooler.output_dim, num_classes)
    return SequenceClassifier(embedding, encoder, pooler, head)


class LanguageModel(nn.Module):
    """Token ids [B, T] + mask [B, T] (+ state) -> next-token logits [B, T, V] and the state."""

    def __init__(self, embedding: nn.Module, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder
        self.head = head

    def forward(
        self,
        ids: Tensor,
        mask: Tensor,
        state: Any = None,
        with_sequence: bool = False,
        targets: Tensor | None = None,
    ) -> tuple[Any, ...]:
        """(logits, state); ``with_sequence``: also the encoder's output [B, T, H] (for the
        activation penalties ``trainer.ar_alpha`` and ``tar_beta``). With ``targets`` [B, T]
        the head's ``loss_sum`` over the real (``mask``) targets replaces the logits: an
        adaptive softmax (``head.softmax=adaptive``) never builds [B, T, V] scores."""
        output = self.encoder(self.embedding(ids), mask, state)  # sequence [B, T, H]
        if targets is not None:
            logits = self.head.loss_sum(output.sequence, targets, mask)
        else:
            logits = self.head(output.sequence)  # [B, T, V]
        if with_sequence:
            return logits, output.state, output.sequence
        return logits, output.state


def build_language_model(cfg: Any, vocab_size: int, pad_id: int) -> LanguageModel:
    """Embedding -> causal encoder -> LM head (tied to the embedding if asked)."""
    configs = component_configs(cfg)
    build = {g: registry.ALL[g].get(c.name) for g, c in configs.items()}
    refuse_characters(build["embedding"].cls, configs["embedding"].name)
    if uses_vocabulary(build["embedding"].cls, configs["embedding"]):
        raise ConfigError(
            f"{word_vectors(configs['embedding'])} (word vectors) is not available with "
            "task=lm yet; use it with a classification task (task=sentiment or task=topic), "
            "or embedding=learned (embedding.init=random) here."
        )
    embedding = build["embedding"].build(configs["embedding"], vocab_size, pad_id)
    encoder = build["encoder"].build(configs["encoder"], embedding.output_dim)
    warn_if_mask_ignored(encoder, configs["encoder"].name)
    if not getattr(encoder, "causal", False):
        raise ConfigError(not_causal(configs["encoder"]))
    encoder.carries_state = True  # its state must be exact at each row's last real token
    head = build["head"].build(configs["head"], encoder.output_dim, vocab_size)
    if getattr(configs["head"], "tie_weights", False):
        if embedding.weight is None:
            raise ConfigError(
                f"head.tie_weights=true needs an embedding with a lookup table; "
                f"embedding={configs['embedding'].name} has none."
            )
        head.tie(embedding.weight)
    return LanguageModel(embedding, encoder, head)


def word_vectors(config: Any) -> str:
    """How the user chose word vectors: ``embedding=pretrained``, or
    ``embedding=learned with embedding.init=word2vec``."""
    init = getattr(config, "init", "random")
    return f"embedding={config.name}" + (f" with embedding.init={init}" if init != "random" else "")


def refuse_characters(embedding_cls: type, name: str) -> None:
    """Only the tagging task supplies each word's characters (``uses_characters``)."""
    if getattr(embedding_cls, "uses_characters", False):
        raise ConfigError(
            f"embedding={name} reads characters; only task=tagging supplies them so far. "
            "Use it with task=tagging, or embedding=learned here."
        )


class SequenceTagger(nn.Module):
    """Token ids [B, T] + mask [B, T] (+ chars [B, T, L]) -> tag logits [B, T, C]."""

    def __init__(self, embedding: nn.Module, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder
        self.head = head

    def forward(self, ids: Tensor, mask: Tensor, chars: Tensor | None = None) -> Tensor:
        if getattr(self.embedding, "uses_characters", False):
            x = self.embedding(ids, chars)  # [B, T, E]
        else:
            x = self.embedding(ids)
        return self.head(self.encoder(x, mask).sequence)  # [B, T, H] -> [B, T, C]


def build_tagger(
    cfg: Any, vocab_size: int, pad_id: int, num_tags: int, num_chars: int | None = None
) -> SequenceTagger:
    """Embedding -> encoder (its ``sequence``) -> a per-token head; no pooler. An embedding
    that reads characters (``uses_characters``) is built with ``num_chars=``."""
    configs = component_configs(cfg)
    build = {g: registry.ALL[g].get(c.name) for g, c in configs.items()}
    entry, config = build["embedding"], configs["embedding"]
    if uses_vocabulary(entry.cls, config):
        raise ConfigError(
            f"{word_vectors(config)} (word vectors) is not available with task=tagging yet; "
            "use embedding=learned (embedding.init=random) or a character-aware embedding."
        )
    if getattr(entry.cls, "uses_characters", False):
        if num_chars is None:
            raise ConfigError(f"embedding={config.name} reads characters, but none were given.")
        embedding = entry.build(config, vocab_size, pad_id, num_chars=num_chars)
    else:
        embedding = entry.build(config, vocab_size, pad_id)
    encoder = build["encoder"].build(configs["encoder"], embedding.output_dim)
    warn_if_mask_ignored(encoder, configs["encoder"].name)
    head = build["head"].build(configs["head"], encoder.output_dim, num_tags)
    return SequenceTagger(embedding, encoder, head)


def not_causal(config: Any) -> str:
    """Why ``encoder=<name>`` cannot model language, and which registered encoders can."""
    always, unidirectional = causal_encoders()
    name = config.name
    fix = (
        f" Set encoder.bidirectional=false to make encoder={name} causal."
        if getattr(config, "bidirectional", False)
        else ""
    )
    choices = [", ".join(f"encoder={n}" for n in always)] if always else []
    if unidirectional:
        listed = ", ".join(f"encoder={n}" for n in unidirectional)
        choices.append(f"with encoder.bidirectional=false (causal per instance): {listed}")
    return (
        f"encoder={name} is not causal (it reads the tokens a language model must predict: a "
        "bidirectional RNN, attention or convolutions over the whole row), so it cannot be "
        f"used with task=lm.{fix} Causal encoders: {'; '.join(choices) or 'none registered'}."
    )


def causal_encoders() -> tuple[list[str], list[str]]:
    """The registered encoders whose class declares ``causal = True``, and those causal per
    instance when built with ``bidirectional=False`` (left-to-right RNNs). An encoder that
    cannot be imported or built here is left out (this is only a hint)."""
    always, unidirectional = [], []
    for entry in registry.encoders.entries():
        try:
            if getattr(entry.cls, "causal", False) is True:
                always.append(entry.name)
            elif "bidirectional" in {f.name for f in dataclasses.fields(entry.config)}:
                config = entry.config(name=entry.name, bidirectional=False)
                if getattr(entry.cls(config, 4), "causal", False) is True:
                    unidirectional.append(entry.name)
        except Exception:  # a broken plugin: it has its own error when chosen
            continue
    return always, unidirectional


def with_embedding_dim(config: dict[str, Any], weights: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's config whose embedding took its size from word vectors
    (``embedding.dim=0``) gets that size back from the saved table, to rebuild the model."""
    embedding = config.get("embedding") or {}
    table = weights.get("embedding.table.weight")
    if embedding.get("dim") != 0 or table is None:
        return config
    return {**config, "embedding": {**embedding, "dim": int(table.shape[1])}}


def init_uniform(model: nn.Module, scale: float) -> None:
    """Every parameter ~ U(-scale, scale), as Zaremba et al. (2014) initialise."""
    for parameter in model.parameters():
        nn.init.uniform_(parameter, -scale, scale)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
