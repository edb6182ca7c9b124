"""Learned token embeddings: a lookup table trained with the model."""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.contracts import Embedding
from plugins.dropout import Dropout, LockedDropout, TokenDropout
from plugins.embeddings.configs import LearnedEmbeddingConfig


class LearnedEmbedding(Embedding):
    """``nn.Embedding`` with the padding row fixed at zero, then token dropout (whole vectors,
    ``token_dropout``) and dropout (element-wise, or locked across time: ``dropout_kind``)."""

    def __init__(self, config: LearnedEmbeddingConfig, vocab_size: int, pad_id: int) -> None:
        super().__init__(config, vocab_size, pad_id)
        self.table = nn.Embedding(vocab_size, config.dim, padding_idx=pad_id)
        locked = getattr(config, "dropout_kind", "element") == "locked"
        self.dropout = LockedDropout(config.dropout) if locked else Dropout(config.dropout)
        self.token_dropout = TokenDropout(getattr(config, "token_dropout", 0.0))
        self.output_dim = config.dim

    @property
    def weight(self) -> Tensor:
        return self.table.weight

    def forward(self, ids: Tensor) -> Tensor:  # [B, T] -> [B, T, dim]
        return self.dropout(self.token_dropout(self.table(ids)))
