"""Character-aware word embeddings: ``embedding=char_cnn`` and ``embedding=word_char``.

Both read each word's characters, so an unknown word still gets a vector of its own (its
spelling: suffixes, capitals, digits). They set ``uses_characters = True``: the task builds
them with ``num_chars=`` (the character vocabulary: 0 = padding, 1 = unknown) and calls them
as ``embedding(ids, chars)``, ids [B, T] and chars [B, T, L] (each word's character ids,
right-padded with 0; a padded word's are all 0).

Exact under padding: a word's vector depends on its own characters only, never on the
padding after them nor on the other words of the batch. Only the real words (ids != pad_id)
are encoded, flattened to [N, L]; padded words get zero vectors.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.contracts import Embedding
from pipeline.errors import ConfigError
from pipeline.masking import at_last_token, lengths_of, reverse_within_length
from plugins.dropout import Dropout, LockedDropout, TokenDropout
from plugins.embeddings.configs import CharCNNEmbeddingConfig, WordCharEmbeddingConfig

#: The character id of padding (after a word's last character, and in padded words).
CHAR_PAD = 0


class CharCNN(nn.Module):
    """Words' characters [N, L] -> [N, filters]: char embeddings, a same-width convolution,
    max over each word's real characters only, tanh (Ma & Hovy 2016). A word with no
    characters gives zeros."""

    def __init__(self, num_chars: int, char_dim: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.chars = nn.Embedding(num_chars, char_dim, padding_idx=CHAR_PAD)
        # Padded characters embed to zero, as the convolution's own padding is: a real
        # position sees the same zeros past the word's end however long the padding is.
        # Padded by hand (an even width pads one more on the right): one output per char.
        self.pad = nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0)
        self.conv = nn.Conv1d(char_dim, filters, kernel)
        self.output_dim = filters

    def forward(self, chars: Tensor) -> Tensor:
        real = chars != CHAR_PAD  # [N, L]
        x = self.pad(self.chars(chars).transpose(1, 2))  # [N, C, L + kernel - 1]
        features = self.conv(x).transpose(1, 2)  # [N, L, F]
        features = features.masked_fill(~real.unsqueeze(2), float("-inf"))
        pooled = features.max(dim=1).values
        empty = ~real.any(dim=1, keepdim=True)
        return torch.tanh(pooled.masked_fill(empty, 0.0))


class CharBiLSTM(nn.Module):
    """Words' characters [N, L] -> [N, 2 * hidden]: a forward LSTM's state at the word's last
    character and a backward LSTM's state at its first (Lample et al. 2016, Plank et al.
    2016). The backward LSTM reads each word reversed within its length, so it starts at the
    last real character, not in the padding. A word with no characters gives zeros."""

    def __init__(self, num_chars: int, char_dim: int, hidden: int) -> None:
        super().__init__()
        self.chars = nn.Embedding(num_chars, char_dim, padding_idx=CHAR_PAD)
        self.forward_lstm = nn.LSTM(char_dim, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(char_dim, hidden, batch_first=True)
        self.output_dim = 2 * hidden

    def forward(self, chars: Tensor) -> Tensor:
        lengths = lengths_of(chars != CHAR_PAD)  # [N]
        x = self.chars(chars)  # [N, L, C]
        forward_states, _ = self.forward_lstm(x)
        backward_states, _ = self.backward_lstm(reverse_within_length(x, lengths))
        last = at_last_token(forward_states, lengths)  # after the word's last character
        first = at_last_token(backward_states, lengths)  # after reading back to the first
        return torch.cat([last, first], dim=1)


def char_words(
    encoder: nn.Module, ids: Tensor, chars: Tensor, pad_id: int, max_length: int
) -> Tensor:
    """The char vectors [B, T, encoder.output_dim] of the real words (ids != pad_id), zeros at
    padded words. Only real words are encoded, each cut to ``max_length`` characters and
    the batch's characters to its longest real word."""
    check_chars(ids, chars)
    real = ids != pad_id  # [B, T]
    out_shape = (*ids.shape, encoder.output_dim)
    words = chars[real][:, :max_length]  # [N, L]
    if words.size(0) == 0 or words.size(1) == 0:  # no real word, or no characters at all
        return torch.zeros(out_shape, device=ids.device)
    longest = int((words != CHAR_PAD).sum(dim=1).max())
    vectors = encoder(words[:, : max(longest, 1)])  # [N, F]
    return vectors.new_zeros(out_shape).index_put((real,), vectors)


def check_chars(ids: Tensor, chars: Tensor | None) -> None:
    """``chars`` must be [B, T, L] for ids [B, T]: say which task contract was broken."""
    if chars is None:
        raise TypeError(
            "a character-aware embedding is called as embedding(ids, chars): chars [B, T, L] "
            "holds each word's character ids (uses_characters = True); none were given"
        )
    if chars.dim() != 3 or tuple(chars.shape[:2]) != tuple(ids.shape):
        raise ValueError(
            f"chars must be [B, T, L] for ids of shape {tuple(ids.shape)}, got {tuple(chars.shape)}"
        )


Config = CharCNNEmbeddingConfig | WordCharEmbeddingConfig


def char_encoder(config: Config, num_chars: int) -> nn.Module:
    """The char CNN, or the char BiLSTM for ``char_encoder=lstm``."""
    if getattr(config, "char_encoder", "cnn") == "lstm":
        return CharBiLSTM(num_chars, config.char_dim, config.char_hidden)
    return CharCNN(num_chars, config.char_dim, config.char_filters, config.char_kernel)


def needs_chars(config: Config, num_chars: int | None) -> None:
    """A model built without a character vocabulary cannot use this embedding: say so."""
    if num_chars is None or num_chars < 2:
        raise ConfigError(
            f"embedding={config.name} reads each word's characters, but this model is built "
            f"without a character vocabulary (num_chars={num_chars}): the task must supply "
            "the characters (task=tagging does). Use embedding=learned with this task."
        )


class CharCNNEmbedding(Embedding):
    """``embedding=char_cnn``: each word is the char CNN of its characters alone, then
    dropout. No word table: ``weight`` is None (no tying)."""

    uses_characters = True

    def __init__(
        self,
        config: CharCNNEmbeddingConfig,
        vocab_size: int,
        pad_id: int,
        num_chars: int | None = None,
    ) -> None:
        super().__init__(config, vocab_size, pad_id)
        needs_chars(config, num_chars)
        self.pad_id = pad_id
        self.max_word_length = config.max_word_length
        self.encoder = char_encoder(config, int(num_chars))
        self.dropout = Dropout(config.dropout)
        self.output_dim = self.encoder.output_dim

    def forward(self, ids: Tensor, chars: Tensor | None = None) -> Tensor:
        vectors = char_words(self.encoder, ids, chars, self.pad_id, self.max_word_length)
        return self.dropout(vectors)


class WordCharEmbedding(Embedding):
    """``embedding=word_char``: a word vector (a learned table, padding row zero; token dropout
    drops it whole) concatenated with the word's char vector (CNN or BiLSTM), then dropout.
    ``weight`` is the word table, [vocab_size, dim], for tying (the LM head projects)."""

    uses_characters = True

    def __init__(
        self,
        config: WordCharEmbeddingConfig,
        vocab_size: int,
        pad_id: int,
        num_chars: int | None = None,
    ) -> None:
        super().__init__(config, vocab_size, pad_id)
        needs_chars(config, num_chars)
        self.pad_id = pad_id
        self.max_word_length = config.max_word_length
        self.table = nn.Embedding(vocab_size, config.dim, padding_idx=pad_id)
        self.encoder = char_encoder(config, int(num_chars))
        locked = config.dropout_kind == "locked"
        self.dropout = LockedDropout(config.dropout) if locked else Dropout(config.dropout)
        self.token_dropout = TokenDropout(config.token_dropout)
        self.output_dim = config.dim + self.encoder.output_dim

    @property
    def weight(self) -> Tensor:
        return self.table.weight

    def forward(self, ids: Tensor, chars: Tensor | None = None) -> Tensor:
        spelled = char_words(self.encoder, ids, chars, self.pad_id, self.max_word_length)
        words = self.token_dropout(self.table(ids))
        return self.dropout(torch.cat([words, spelled], dim=2))
