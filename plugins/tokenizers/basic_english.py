"""``tokenizer=basic_english``: torchtext 0.18's ``get_tokenizer("basic_english")`` in pure Python.

Tokens: ``torchtext.data.utils._basic_english_normalize``: lowercase, then 12 regex rules
in order, then ``str.split()``. Vocabulary: ``torchtext.vocab.build_vocab_from_iterator``:
count tokens, sort by (count descending, token ascending), keep the first
``vocab_size - 2``, drop any that equal a special, drop those under ``min_freq``, put the
specials first. Ours are ``<pad>`` = 0, ``<unk>`` = 1 (torchtext scripts often list
``<unk>`` first; only those two ids differ). ``tests/plugins/test_tokenizers.py`` checks
both against torchtext's real outputs.
"""

from __future__ import annotations

import json
import re
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

NAME = "basic_english"
#: Bump when a change here changes the ids produced from the same saved files.
VERSION = "1"
VOCAB_FILE = "vocab.json"

# torchtext/data/utils.py, verbatim (order matters: "'" is padded before "." is).
_PATTERNS = [
    r"\'",
    r"\"",
    r"\.",
    r"<br \/>",
    r",",
    r"\(",
    r"\)",
    r"\!",
    r"\?",
    r"\;",
    r"\:",
    r"\s+",
]
_REPLACEMENTS = [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "]
_RULES = [(re.compile(p), r) for p, r in zip(_PATTERNS, _REPLACEMENTS, strict=True)]


def basic_english_tokenize(line: str) -> list[str]:
    """Exactly ``torchtext.data.get_tokenizer("basic_english")(line)``."""
    line = line.lower()
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def build_vocab(
    token_lists: Iterable[list[str]],
    max_tokens: int | None,
    min_freq: int = 1,
    specials: list[str] = SPECIALS,
) -> list[str]:
    """``torchtext.vocab.build_vocab_from_iterator(..., special_first=True)``'s itos."""
    counter: Counter[str] = Counter()
    for tokens in token_lists:
        counter.update(tokens)
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    if max_tokens is not None:
        ordered = ordered[: max(max_tokens - len(specials), 0)]
    special_set = set(specials)
    words = [t for t, n in ordered if n >= min_freq and t not in special_set]
    return list(specials) + words


@dataclass
class BasicEnglishConfig(ComponentConfig):
    vocab_size: int = describe(
        "max vocabulary size incl. the specials <pad> and <unk> (torchtext's max_tokens)",
        30000,
        min=len(SPECIALS),
    )
    min_freq: int = describe(
        "min count in the train split for a token to enter the vocab", 1, min=1
    )


@tokenizers.register(NAME, config=BasicEnglishConfig)
class BasicEnglishTokenizer:
    """torchtext's ``basic_english`` tokens + vocabulary; unknown tokens map to ``<unk>``."""

    name = NAME

    def __init__(self, config: BasicEnglishConfig | None = None) -> None:
        self.config = config if config is not None else BasicEnglishConfig(name=NAME)
        self._itos: list[str] | None = None
        self._stoi: dict[str, int] = {}

    def _set_vocab(self, itos: list[str]) -> None:
        if itos[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a basic_english vocab must start with {SPECIALS}, got {itos[:2]}")
        self._itos = list(itos)
        # Specials are not looked up from text: a literal "<pad>" in a review is <unk>.
        self._stoi = {t: i for i, t in enumerate(self._itos) if i >= len(SPECIALS)}

    def fit(self, texts: Iterable[str]) -> None:
        tokens = (basic_english_tokenize("" if t is None else t) for t in texts)
        self._set_vocab(build_vocab(tokens, self.config.vocab_size, self.config.min_freq))

    def _fitted(self) -> list[str]:
        if self._itos is None:
            raise not_fitted(NAME)
        return self._itos

    def tokenize(self, text: str) -> list[str]:
        return basic_english_tokenize(text)

    def encode(self, text: str) -> list[int]:
        self._fitted()
        get = self._stoi.get
        return [get(t, UNK_ID) for t in basic_english_tokenize("" if text is None else text)]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: list[int]) -> str:
        itos = self._fitted()
        return " ".join(itos[int(i)] for i in ids if int(i) >= len(SPECIALS))

    @property
    def vocab_size(self) -> int:
        return len(self._itos) if self._itos is not None else len(SPECIALS)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

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
    def load(cls, directory: str | Path) -> BasicEnglishTokenizer:
        self = cls(read_config(directory, BasicEnglishConfig))
        self._set_vocab(json.loads((Path(directory) / VOCAB_FILE).read_text(encoding="utf-8")))
        return self

    def __repr__(self) -> str:
        state = f"vocab_size={self.vocab_size}" if self._itos is not None else "not fitted"
        return f"BasicEnglishTokenizer({state}, config={self.config})"
