"""``tokenizer=word``: a word-level vocabulary trained with Hugging Face ``tokenizers``.

Normalizer: HTML line breaks (``<br />``, as in IMDb) become spaces, then optional
lowercasing. Pre-tokenizer: ``Whitespace`` (``\\w+|[^\\w\\s]+``: words and runs of
punctuation). Model: ``WordLevel`` trained by ``WordLevelTrainer``, whose ordering is
count descending, ties broken by the token itself (deterministic). ``<pad>`` = 0, ``<unk>`` = 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.contracts import ComponentConfig
from pipeline.registry import describe, tokenizers
from plugins.tokenizers._common import (
    PAD,
    PAD_ID,
    SPECIALS,
    UNK,
    UNK_ID,
    fingerprint,
    not_fitted,
    read_config,
    write_config,
)

NAME = "word"
#: Bump when a change here changes the ids produced from the same saved files.
VERSION = "1"
HF_FILE = "tokenizer.json"
#: ``<br />``, ``<br/>``, ``<br>`` (any case) become a space.
BR_PATTERN = r"(?i)<br\s*/?>"


@dataclass
class WordTokenizerConfig(ComponentConfig):
    vocab_size: int = describe(
        "max vocabulary size incl. the specials <pad> and <unk>", 30000, min=len(SPECIALS)
    )
    min_freq: int = describe("min count in the train split for a word to enter the vocab", 2, min=1)
    lowercase: bool = describe("lowercase the text before splitting it into words", True)


@tokenizers.register(NAME, config=WordTokenizerConfig)
class WordTokenizer:
    """Word-level tokenizer (HF ``WordLevel``); unknown words map to ``<unk>``."""

    name = NAME

    def __init__(self, config: WordTokenizerConfig | None = None) -> None:
        self.config = config if config is not None else WordTokenizerConfig(name=NAME)
        self._tok: Any = None  # tokenizers.Tokenizer once fitted or loaded

    # -- fitting -----------------------------------------------------------------------
    def _empty(self) -> Any:
        from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
        from tokenizers.models import WordLevel

        tok = Tokenizer(WordLevel(unk_token=UNK))
        steps = [normalizers.Replace(Regex(BR_PATTERN), " ")]
        if self.config.lowercase:
            steps.append(normalizers.Lowercase())
        tok.normalizer = normalizers.Sequence(steps)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        return tok

    def fit(self, texts: Iterable[str]) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.trainers import WordLevelTrainer

        trainer = WordLevelTrainer(
            vocab_size=self.config.vocab_size,
            min_frequency=self.config.min_freq,
            special_tokens=list(SPECIALS),
            show_progress=False,
        )
        tok = self._empty()
        tok.train_from_iterator(("" if t is None else t for t in texts), trainer=trainer)
        # The trainer also registers the specials as "added tokens", which are matched in
        # raw text: a review containing the literal "<pad>" would get the pad id. Rebuild
        # the model from the learned vocab alone so that only padding is ever id 0.
        vocab = tok.get_vocab()
        assert vocab[PAD] == PAD_ID and vocab[UNK] == UNK_ID, vocab
        plain = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
        plain.normalizer = tok.normalizer
        plain.pre_tokenizer = tok.pre_tokenizer
        self._tok = plain

    def _fitted(self) -> Any:
        if self._tok is None:
            raise not_fitted(NAME)
        return self._tok

    # -- use ---------------------------------------------------------------------------
    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        tok = self._fitted()
        # encode_batch_fast (tokenizers >= 0.20) skips the offsets: ~1.5x faster, same ids.
        encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
        return [e.ids for e in encode(["" if t is None else t for t in texts])]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text`` before the vocabulary lookup."""
        tok = self._fitted()
        normalized = tok.normalizer.normalize_str(text)
        return [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(normalized)]

    def decode(self, ids: list[int]) -> str:
        tok = self._fitted()
        return " ".join(tok.id_to_token(int(i)) for i in ids if int(i) >= len(SPECIALS))

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size() if self._tok is not None else len(SPECIALS)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    def vocab(self) -> list[str]:
        """Tokens in id order."""
        tok = self._fitted()
        return [tok.id_to_token(i) for i in range(tok.get_vocab_size())]

    def fingerprint(self) -> str:
        return fingerprint(NAME, VERSION, self.config, self._fitted().to_str())

    # -- files -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        tok = self._fitted()
        write_config(directory, NAME, self.config)
        tok.save(str(Path(directory) / HF_FILE))

    @classmethod
    def load(cls, directory: str | Path) -> WordTokenizer:
        from tokenizers import Tokenizer

        self = cls(read_config(directory, WordTokenizerConfig))
        self._tok = Tokenizer.from_file(str(Path(directory) / HF_FILE))
        return self

    def __repr__(self) -> str:
        state = f"vocab_size={self.vocab_size}" if self._tok is not None else "not fitted"
        return f"WordTokenizer({state}, config={self.config})"
