"""Learned token embeddings: a lookup table trained with the model, random at first or
started from word2vec vectors trained on the run's texts (``init=word2vec``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.contracts import Embedding, Vocabulary
from plugins.dropout import Dropout, LockedDropout, TokenDropout
from plugins.embeddings.configs import LearnedEmbeddingConfig, PretrainedEmbeddingConfig


class LearnedEmbedding(Embedding):
    """``nn.Embedding`` with the padding row fixed at zero, then token dropout (whole vectors,
    ``token_dropout``) and dropout (element-wise, or locked across time: ``dropout_kind``).

    With ``init=word2vec`` and a ``vocabulary`` (a training run), the rows of words that have
    a trained vector start from it; rebuilt from a checkpoint (no vocabulary) it is the plain
    table whose weights the checkpoint then gives."""

    def __init__(
        self,
        config: LearnedEmbeddingConfig,
        vocab_size: int,
        pad_id: int,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        super().__init__(config, vocab_size, pad_id)
        self.table = nn.Embedding(vocab_size, config.dim, padding_idx=pad_id)
        if vocabulary is not None and getattr(config, "init", "random") == "word2vec":
            start_from_word2vec(self.table, config, vocabulary)
        locked = getattr(config, "dropout_kind", "element") == "locked"
        self.dropout = LockedDropout(config.dropout) if locked else Dropout(config.dropout)
        self.token_dropout = TokenDropout(getattr(config, "token_dropout", 0.0))
        self.output_dim = config.dim

    @property
    def weight(self) -> Tensor:
        return self.table.weight

    def forward(self, ids: Tensor) -> Tensor:  # [B, T] -> [B, T, dim]
        return self.dropout(self.token_dropout(self.table(ids)))


def start_from_word2vec(
    table: nn.Embedding, config: LearnedEmbeddingConfig, vocabulary: Vocabulary
) -> None:
    """Copy word2vec vectors into ``table``: trained (or read from the cache) on the training
    texts and the data's related texts exactly as ``embedding=pretrained
    embedding.train=word2vec`` trains them (its defaults: window, min_count, epochs, cache),
    the coverage printed and logged. Rows without a vector keep their random init; the
    padding row stays zero.

    ``init_scale=table`` scales the vectors, all by one factor, to the table's own init std
    (N(0, 1): 1; directions and relative norms kept): SST-2's words' vectors have std 0.57,
    and a transformer adds sinusoidal positions of 0.71 per feature, as large as them (SST-2,
    seeds 42/1/2: 0.817 / 0.823 / 0.818 -> 0.826 / 0.832 / 0.822). The LSTM did better
    with the vectors as trained (SST-2, seed 42: 0.862 against 0.850 scaled)."""
    from plugins.embeddings.pretrained import load

    settings = PretrainedEmbeddingConfig(name="pretrained", dim=config.dim, train="word2vec")
    related = vocabulary.related_texts() if vocabulary.related_texts else []
    aligned = load(settings, vocabulary, related)
    found = aligned.found.clone()
    found[table.padding_idx] = False
    with torch.no_grad():
        vectors = aligned.vectors[found].to(table.weight.dtype)  # [found, dim]
        if getattr(config, "init_scale", "vectors") == "table" and vectors.numel() > 1:
            init_std, vectors_std = float(table.weight.std()), float(vectors.std())
            scale = init_std / vectors_std if vectors_std > 0 else 1.0
            vectors = vectors * scale
            print(
                f"embedding: word2vec rows scaled x{scale:.2f} to the table's init std "
                f"{init_std:.2f} (embedding.init_scale=table)",
                flush=True,
            )
        table.weight[found] = vectors
