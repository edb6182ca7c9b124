"""``tokenizer=char``: one token per character (character-level language models).

Vocabulary: the characters of the train split, after optional lowercasing. ``<pad>`` = 0,
``<unk>`` = 1, then the characters by count descending, ties broken by the character
(code point order: deterministic, whatever the order of the texts). ``min_freq`` drops the
rare ones, then ``vocab_size`` keeps the most frequent. Every character is a token, the
newline and other whitespace included, so ``decode(encode(text)) == text`` for any text
whose characters are all in the vocabulary. Unknown characters get the ``<unk>`` id.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.registry import ComponentConfig, describe, tokenizers
from plugins.tokenizers._common import (
    PAD_ID,
    SPECIALS,
    UNK_ID,
    fingerprint,
    not_fitted,
    read_config,
    write_config,
)

NAME = "char"
#: Bump when a change here changes the ids produced from the same saved files.
VERSION = "1"
VOCAB_FILE = "vocab.json"


@dataclass
class CharTokenizerConfig(ComponentConfig):
    lowercase: bool = describe("lowercase the text before splitting it into characters", False)
    min_freq: int = describe(
        "min count in the train split for a character to enter the vocab", 1, min=1
    )
    vocab_size: int | None = describe(
        "max vocabulary size incl. the specials <pad> and <unk>; null = every character seen",
        None,
        min=len(SPECIALS),
    )


def build_char_vocab(
    texts: Iterable[str], lowercase: bool, min_freq: int, vocab_size: int | None
) -> list[str]:
    """The specials, then the characters by (count descending, character), filtered."""
    counter: Counter[str] = Counter()
    for text in texts:
        if text:
            counter.update(text.lower() if lowercase else text)
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    chars = [c for c, n in ordered if n >= min_freq]
    if vocab_size is not None:
        chars = chars[: max(vocab_size - len(SPECIALS), 0)]
    return [*SPECIALS, *chars]


@tokenizers.register(NAME, config=CharTokenizerConfig)
class CharTokenizer:
    """Character-level tokenizer; characters not seen in training map to ``<unk>``."""

    name = NAME
    #: What joins decoded tokens back into text (generation): characters need nothing.
    separator = ""

    def __init__(self, config: CharTokenizerConfig | None = None) -> None:
        self.config = config if config is not None else CharTokenizerConfig(name=NAME)
        self._itos: list[str] | None = None
        self._stoi: dict[str, int] = {}

    def _set_vocab(self, itos: list[str]) -> None:
        if itos[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a char vocab must start with {SPECIALS}, got {itos[:2]}")
        chars = itos[len(SPECIALS) :]
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("a char vocab holds distinct single characters after its specials")
        self._itos = list(itos)
        # The specials are several characters long, so no text character is ever one.
        self._stoi = {c: i for i, c in enumerate(self._itos) if i >= len(SPECIALS)}

    def fit(self, texts: Iterable[str]) -> None:
        self._set_vocab(
            build_char_vocab(
                ("" if t is None else t for t in texts),
                self.config.lowercase,
                self.config.min_freq,
                self.config.vocab_size,
            )
        )

    def _fitted(self) -> list[str]:
        if self._itos is None:
            raise not_fitted(NAME)
        return self._itos

    def tokenize(self, text: str) -> list[str]:
        """The characters of ``text`` (lowercased if configured)."""
        text = "" if text is None else text
        return list(text.lower() if self.config.lowercase else text)

    def encode(self, text: str) -> list[int]:
        self._fitted()
        get = self._stoi.get
        return [get(c, UNK_ID) for c in self.tokenize(text)]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: list[int]) -> str:
        """The characters joined with no separator; specials (<pad>, <unk>) are dropped."""
        itos = self._fitted()
        return "".join(itos[int(i)] for i in ids if int(i) >= len(SPECIALS))

    @property
    def vocab_size(self) -> int:
        return len(self._itos) if self._itos is not None else len(SPECIALS)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def eos_id(self) -> int | None:
        """Characters need no end-of-line token: "\\n" is an ordinary character."""
        return None

    def vocab(self) -> list[str]:
        """Tokens in id order."""
        return list(self._fitted())

    def fingerprint(self) -> str:
        return fingerprint(NAME, VERSION, self.config, self._fitted())

    def save(self, directory: str | Path) -> None:
        itos = self._fitted()
        write_config(directory, NAME, self.config)
        (Path(directory) / VOCAB_FILE).write_text(
            json.dumps(itos, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: str | Path) -> CharTokenizer:
        self = cls(read_config(directory, CharTokenizerConfig))
        self._set_vocab(json.loads((Path(directory) / VOCAB_FILE).read_text(encoding="utf-8")))
        return self

    def __repr__(self) -> str:
        state = f"vocab_size={self.vocab_size}" if self._itos is not None else "not fitted"
        return f"CharTokenizer({state}, config={self.config})"
