"""``embedding=pretrained``: a lookup table that starts from word vectors, read from a file
(``embedding.path``) or trained with word2vec on the training texts (``embedding.train``),
aligned to the run's vocabulary; fine-tuned with the model or frozen (``embedding.freeze``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pipeline.contracts import Embedding, Vocabulary
from pipeline.errors import ConfigError
from plugins.dropout import Dropout
from plugins.embeddings.configs import PretrainedEmbeddingConfig
from plugins.embeddings.vectors import Aligned, aligned_vectors


class PretrainedEmbedding(Embedding):
    """``nn.Embedding`` initialised from word vectors (padding row zero), then dropout.

    Rebuilt from a checkpoint (no ``vocabulary``), it is a table of ``config.dim`` columns
    whose weights the checkpoint then gives."""

    uses_vocabulary = True

    def __init__(
        self,
        config: PretrainedEmbeddingConfig,
        vocab_size: int,
        pad_id: int,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        super().__init__(config, vocab_size, pad_id)
        aligned = load(config, vocabulary) if vocabulary is not None else None
        dim = aligned.dim if aligned is not None else config.dim
        if dim == 0:
            raise ConfigError(
                "embedding=pretrained with embedding.dim=0 takes its size from the vectors, "
                "but this model is built without them; set embedding.dim to their size."
            )
        self.table = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        if aligned is not None:
            with torch.no_grad():
                self.table.weight.copy_(aligned.initial(pad_id))
        self.table.weight.requires_grad_(not config.freeze)
        self.dropout = Dropout(config.dropout)
        self.output_dim = dim

    @property
    def weight(self) -> Tensor:
        return self.table.weight

    def forward(self, ids: Tensor) -> Tensor:  # [B, T] -> [B, T, dim]
        return self.dropout(self.table(ids))


def load(
    config: PretrainedEmbeddingConfig, vocabulary: Vocabulary, related: list[str] | None = None
) -> Aligned:
    """The vectors aligned to ``vocabulary`` (trained first with ``train=word2vec``, on the
    ``related`` texts too: ``embedding=learned``'s ``init=word2vec`` comes here); prints and
    logs their coverage of the vocabulary."""
    path, fmt = config.path, config.format
    if config.train == "none" and not str(path).strip():
        raise ConfigError(
            "embedding=pretrained needs a vectors file: set embedding.path=/path/to/"
            "glove.6B.100d.txt (word2vec, GloVe or fastText .vec), or train vectors on "
            "the training texts with embedding.train=word2vec."
        )
    if config.train == "word2vec":
        from plugins.embeddings.word2vec import trained_vectors

        trained, fresh = trained_vectors(config, vocabulary, related)
        done = "trained" if fresh else "from cache"
        print(f"word2vec: {done}, {trained}", flush=True)
        vocabulary.tracker.log_artifact(trained, "vectors")
        path, fmt = str(trained), "word2vec"
    aligned = aligned_vectors(path, fmt, vocabulary.tokens, config.cache_dir)
    if config.dim and config.dim != aligned.dim:
        raise ConfigError(
            f"embedding.dim={config.dim}, but the vectors in {path} have {aligned.dim} "
            f"dimensions. Set embedding.dim={aligned.dim} or 0 (take the vectors' size)."
        )
    report(aligned, vocabulary)
    return aligned


def report(aligned: Aligned, vocabulary: Vocabulary) -> None:
    """``embedding: 8,412 of 10,001 words (84.1 %) from glove.6B.100d.txt``, printed and
    logged (metrics embedding_coverage and embedding_oov, tag embedding_vectors)."""
    pad = vocabulary.pad_id
    line = aligned.coverage(pad)
    print(f"embedding: {line}", flush=True)
    total = len(aligned.found) - 1
    hits = int(aligned.found.sum()) - int(aligned.found[pad])
    tracker: Any = vocabulary.tracker
    tracker.log_metrics({"embedding_coverage": hits / max(total, 1), "embedding_oov": total - hits})
    tracker.set_tags({"embedding_vectors": line})
