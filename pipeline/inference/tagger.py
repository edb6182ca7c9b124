"""A trained tagger on words, rebuilt from its checkpoint: one tag per given word.

:class:`TrainedTagger` encodes sentences exactly as its training run did (the run's word
tokenizer, one id per word, never re-split; the run's character vocabulary for an embedding
that reads characters) and scores them with the run's own evaluation
(``pipeline.tasks.tagging_eval.evaluate_tagger``), so ``evaluate`` reproduces the run's
metrics. Words unseen in training (for OOV accuracy) are those of ``train_words.json``, which
the run writes beside its tokenizer (:func:`save_train_words`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline import tasks
from pipeline.errors import DataError, PipelineError
from pipeline.tasks.tagging_eval import TagEvaluation, TaggedSplit, encode_split, evaluate_tagger

#: The training run's word forms, beside its tokenizer (OOV = a form not in it).
TRAIN_WORDS = "train_words.json"
#: A word's characters beyond this are cut, unless ``embedding.max_word_length`` says (as in
#: training: ``pipeline.tasks.tagging``).
MAX_WORD_LENGTH = 24


def save_train_words(sentences: Iterable[Sequence[str]], folder: Path) -> Path:
    """Write the distinct word forms of the training sentences to ``folder/train_words.json``."""
    path = Path(folder) / TRAIN_WORDS
    forms = sorted({word for words in sentences for word in words})
    path.write_text(json.dumps(forms, ensure_ascii=False), encoding="utf-8")
    return path


@dataclass
class TrainedTagger:
    """A tagger in eval mode with the tokenizer, tags and characters it was trained with."""

    model: nn.Module
    tokenizer: Any
    tags: list[str]  # the checkpoint's: the model's outputs first, then tags it never saw
    num_outputs: int  # tags the model can predict (training's)
    config: dict[str, Any]  # the resolved training config
    characters: Any = None  # pipeline.data.characters.Characters, if the embedding reads them
    train_words: frozenset[str] | None = None  # None: an older run (OOV accuracy unknown)
    run_id: str | None = None

    @property
    def tag_column(self) -> str:
        """The CoNLL-U column it was trained on (``upos`` or ``xpos``)."""
        return str((self.config.get("data") or {}).get("tag_column") or "upos")

    def with_tags(self, names: Iterable[str]) -> list[str]:
        """Its tags plus those of ``names`` it never saw (they count as errors), in order."""
        unseen = sorted(set(names) - set(self.tags))
        return self.tags + unseen

    def encode(
        self, words: list[list[str]], tags: list[list[str]] | None = None, names: Any = None
    ) -> TaggedSplit:
        """Word ids, tag ids (``names``' ids; 0 without tags), OOV flags and characters."""
        index = {tag: i for i, tag in enumerate(names or self.tags)}
        tag_ids = [[index[t] for t in ts] for ts in tags] if tags else [[0] * len(w) for w in words]
        cap = int((self.config.get("embedding") or {}).get("max_word_length") or MAX_WORD_LENGTH)
        return encode_split(self.tokenizer, words, tag_ids, self.train_words, self.characters, cap)

    def evaluate(
        self,
        words: list[list[str]],
        tags: list[list[str]] | None = None,
        *,
        names: list[str] | None = None,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
    ) -> TagEvaluation:
        """The run's evaluation of these sentences (``names``: every tag, model's first)."""
        names = names or self.tags
        split = self.encode(words, tags, names)
        device = torch.device(device) if isinstance(device, str) else device
        self.model.to(device)
        return evaluate_tagger(
            self.model, split, batch_size=batch_size, device=device, num_tags=len(names)
        )

    def tag(
        self, words: list[list[str]], batch_size: int = 256, device: torch.device | str = "cpu"
    ) -> list[list[str]]:
        """One tag per word of each sentence (an empty sentence gets no tag)."""
        if not words:
            return []
        result = self.evaluate(words, batch_size=batch_size, device=device)
        return [[self.tags[i] for i in row] for row in result.predicted]


def tagger_from_checkpoint(
    path: str | Path, tokenizer_dir: str | Path | None = None
) -> TrainedTagger:
    """Rebuild a tagger from a checkpoint (``weights_only``); the tokenizer folder (with the
    characters and training words) from ``tokenizer_dir``, else the one it records, else
    ``tokenizer/`` beside it."""
    from omegaconf import OmegaConf

    from pipeline.data.characters import FILE as CHARACTERS
    from pipeline.data.characters import Characters
    from pipeline.data.tokenize import load_tokenizer
    from pipeline.inference.classifier import tokenizer_folder
    from pipeline.model.assembly import build_tagger
    from pipeline.model.checkpoint import Checkpoint, load_weights
    from pipeline.plugins import load_plugins

    path = Path(path)
    saved = Checkpoint.load(path, what="tagging")
    kind = tasks.kind(saved.kind)
    if kind.predicts != "tags":
        raise PipelineError(
            f"{path} is a {kind.noun} checkpoint; it predicts {kind.predicts}, not tags. Use "
            f"it with: python -m pipeline {kind.usage.format(path=path)}"
        )
    if not saved.config or not saved.labels or "num_outputs" not in saved.extra:
        raise PipelineError(
            f"{path} is not a tagging checkpoint of this pipeline (it lacks the config, tags "
            "or number of outputs). Use the best.pt or last.pt of a task=tagging run."
        )
    folder = tokenizer_folder(path, saved.tokenizer_dir, tokenizer_dir)
    characters = Characters.load(folder) if (folder / CHARACTERS).is_file() else None
    if saved.extra.get("num_chars") and characters is None:
        raise PipelineError(
            f"{path}'s model reads characters, but {folder} has no {CHARACTERS}. Use the "
            "tokenizer/ folder its run wrote (or model=<run id>, which keeps it)."
        )
    load_plugins()  # building a model reads the registries, never Hydra's ConfigStore
    tokenizer = load_tokenizer(folder)
    model = build_tagger(
        OmegaConf.create(saved.config),
        tokenizer.vocab_size,
        tokenizer.pad_id,
        int(saved.extra["num_outputs"]),
        num_chars=characters.size if characters is not None else None,
    )
    load_weights(model, saved.model, path, folder)
    return TrainedTagger(
        model=model.eval(),
        tokenizer=tokenizer,
        tags=[str(t) for t in saved.labels],
        num_outputs=int(saved.extra["num_outputs"]),
        config=saved.config,
        characters=characters,
        train_words=_train_words(folder),
        run_id=saved.mlflow_run_id,
    )


def _train_words(folder: Path) -> frozenset[str] | None:
    path = folder / TRAIN_WORDS
    if not path.is_file():
        return None
    try:
        return frozenset(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        raise DataError(
            f"{path} cannot be read ({exc}); copy the run's tokenizer/ again."
        ) from None
