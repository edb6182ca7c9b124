"""Tagged splits as tensors, their batches, and the evaluation of a tagger on one split:
loss, token accuracy and macro-F1 over real tokens (padding never counts), accuracy on words
unseen in training, the confusion matrix and, for BIO tags, span-level scores (seqeval)."""

from __future__ import annotations

from collections.abc import Container, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.data.batching import batch_order
from pipeline.reporting.metrics import accuracy, confusion_matrix, macro_f1


@dataclass
class TaggedSplit:
    """One split, right-padded: word ids, tag ids (-1 at padding), word lengths; ``oov``:
    words whose form never occurs in train; ``forms`` index ``form_chars`` (0 = padding),
    the character ids of each distinct form (only when the embedding reads characters)."""

    ids: Tensor  # [N, L]
    tags: Tensor  # [N, L]
    lengths: Tensor  # [N]
    oov: Tensor  # [N, L] bool
    forms: Tensor | None = None  # [N, L]
    form_chars: Tensor | None = None  # [F, W]
    form_lengths: Tensor | None = None  # [F]

    def __len__(self) -> int:
        return self.ids.size(0)


@dataclass
class TagBatch:
    ids: Tensor  # [B, T]
    mask: Tensor  # [B, T] True = real word
    tags: Tensor  # [B, T], -1 at padding
    oov: Tensor  # [B, T]
    chars: Tensor | None = None  # [B, T, L]

    def __len__(self) -> int:
        return self.ids.size(0)


def encode_split(
    tokenizer: Any,
    words: list[list[str]],
    tag_ids: list[list[int]],
    train_forms: Container[str] | None,
    characters: Any = None,
    max_word_length: int = 24,
) -> TaggedSplit:
    """Sentences as a :class:`TaggedSplit`, the one encoding of training and inference: one
    id per word (``encode_words``), OOV flags against ``train_forms`` (none when None), and
    with ``characters`` (a ``CharVocabulary``) each distinct form's characters once."""
    split = TaggedSplit(
        ids=pad_rows(tokenizer.encode_words(words), tokenizer.pad_id),
        tags=pad_rows(tag_ids, -1),
        lengths=torch.tensor([len(ws) for ws in words], dtype=torch.long),
        oov=pad_rows(
            [[int(train_forms is not None and w not in train_forms) for w in ws] for ws in words],
            0,
        ).bool(),
    )
    if characters is not None:
        forms = sorted({w for ws in words for w in ws})
        position = {w: i + 1 for i, w in enumerate(forms)}
        longest = max(min(max((len(w) for w in forms), default=1), max_word_length), 1)
        padding = torch.zeros(1, longest, dtype=torch.long)  # form 0: a padded word
        chars = torch.cat([padding, characters.encode(forms, longest)])
        split.forms = pad_rows([[position[w] for w in ws] for ws in words], 0)
        split.form_chars = chars  # [F, W]
        split.form_lengths = (chars > 0).sum(1)
    return split


def pad_rows(rows: list[list[int]], value: int) -> Tensor:
    """[N, max(len)] int64, right-padded with ``value``."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    out = np.full((len(rows), max(int(lengths.max(initial=0)), 1)), value, dtype=np.int64)
    if lengths.sum():
        flat = np.fromiter((x for r in rows for x in r), dtype=np.int64, count=int(lengths.sum()))
        out[np.repeat(np.arange(len(rows)), lengths), _columns(lengths)] = flat
    return torch.from_numpy(out)


def _columns(lengths: np.ndarray) -> np.ndarray:
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(int(lengths.sum())) - starts


#: A batch's width is its longest sentence rounded up to a multiple of this: fewer distinct
#: shapes, so the CPU's RNN kernels (oneDNN, one primitive per shape) are built far less often
#: (the first epoch ran ~4x slower than the next without it). Padding never counts.
WIDTH_STEP = 8


def iterate_tag_batches(
    split: TaggedSplit, order: list[Tensor], device: torch.device
) -> Iterator[TagBatch]:
    """Batches cut to their longest sentence (rounded up to ``WIDTH_STEP``) and longest word,
    moved to ``device``."""
    for index in order:
        lengths = split.lengths[index]
        longest = max(int(lengths.max()), 1)
        width = min(-(-longest // WIDTH_STEP) * WIDTH_STEP, split.ids.size(1))
        mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
        chars = None
        if split.forms is not None:
            forms = split.forms[index, :width]
            longest = max(int(split.form_lengths[forms].max()), 1)
            chars = split.form_chars[forms][:, :, :longest].to(device)
        yield TagBatch(
            split.ids[index, :width].to(device),
            mask.to(device),
            split.tags[index, :width].to(device),
            split.oov[index, :width].to(device),
            chars,
        )


def forward(model: nn.Module, batch: TagBatch) -> Tensor:
    """Tag logits [B, T, C] (the batch's chars go to a model that reads them)."""
    if batch.chars is not None:
        return model(batch.ids, batch.mask, batch.chars)
    return model(batch.ids, batch.mask)


def token_loss(logits: Tensor, batch: TagBatch) -> Tensor:
    """Cross-entropy summed over real words whose tag the model can predict (padding, and a
    tag unseen in training, -1 / >= C, never count)."""
    target = batch.tags.masked_fill(~batch.mask | (batch.tags >= logits.size(-1)), -1)
    return F.cross_entropy(
        logits.float().flatten(0, 1), target.flatten(), reduction="sum", ignore_index=-1
    )


@dataclass
class TagEvaluation:
    loss: float
    accuracy: float
    f1: float
    oov_accuracy: float
    oov_words: int
    confusion: Tensor  # [C_all, C_all], rows = true tag
    predicted: list[list[int]] = field(default_factory=list)  # per sentence, split order

    def metrics(self) -> dict[str, float]:
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "f1": self.f1,
            "oov_accuracy": self.oov_accuracy,
        }


@torch.inference_mode()
def evaluate_tagger(
    model: nn.Module,
    split: TaggedSplit,
    *,
    batch_size: int,
    device: torch.device,
    num_tags: int,
    autocast_dtype: torch.dtype | None = None,
) -> TagEvaluation:
    """Run ``model`` over ``split`` in eval mode: every real word counted once."""
    was_training = model.training
    model.eval()
    loss_sum, counted = 0.0, 0
    confusion = torch.zeros(num_tags, num_tags, dtype=torch.long)
    oov_right, oov_total = 0, 0
    predicted: list[list[int]] = [[] for _ in range(len(split))]
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    )
    order = batch_order(split.lengths, batch_size, shuffle=False, bucket_size=1)
    for index, batch in zip(order, iterate_tag_batches(split, order, device), strict=True):
        with autocast:
            logits = forward(model, batch)
        loss_sum += float(token_loss(logits, batch))
        counted += int((batch.mask & (batch.tags < logits.size(-1))).sum())
        guess = logits.argmax(dim=-1).cpu()
        mask, tags, oov = batch.mask.cpu(), batch.tags.cpu(), batch.oov.cpu()
        confusion += confusion_matrix(guess[mask], tags[mask], num_tags)
        right = (guess == tags) & mask
        oov_right += int((right & oov).sum())
        oov_total += int((oov & mask).sum())
        rows = zip(index.tolist(), mask.sum(1).tolist(), strict=True)
        for position, (row, length) in enumerate(rows):
            predicted[row] = guess[position, :length].tolist()
    model.train(was_training)
    return TagEvaluation(
        loss_sum / max(counted, 1),
        accuracy(confusion),
        macro_f1(confusion),
        oov_right / oov_total if oov_total else 0.0,
        oov_total,
        confusion,
        predicted,
    )


def is_bio(tags: list[str]) -> bool:
    """Every tag is O or starts with B- / I- (a named-entity style tag set), and one is not O."""
    return any(t != "O" for t in tags) and all(t == "O" or t.startswith(("B-", "I-")) for t in tags)


def span_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Span-level precision, recall and F1 (seqeval, CoNLL-style chunks)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    return {
        "span_precision": float(precision_score(gold, predicted, zero_division=0)),
        "span_recall": float(recall_score(gold, predicted, zero_division=0)),
        "span_f1": float(f1_score(gold, predicted, zero_division=0)),
    }
