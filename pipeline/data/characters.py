"""The character vocabulary of a tagging run, for embeddings that read characters
(``Embedding.uses_characters``): fitted on the training words (every character seen), saved
with the run so a checkpoint's model reads the same ids. Ids: 0 = padding (of characters and
of words), 1 = unknown character, then the characters by count (ties by the character)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

PAD_ID, UNK_ID = 0, 1
FILE = "characters.json"
#: A word's characters beyond this are cut (``embedding.max_word_length`` overrides it).
MAX_WORD_LENGTH = 24


class Characters:
    """Character <-> id, fitted on words."""

    def __init__(self, chars: list[str]) -> None:
        self.chars = list(chars)
        self.index = {c: i + 2 for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, words: Iterable[str]) -> Characters:
        counts = Counter(c for word in words for c in word)
        return cls(sorted(counts, key=lambda c: (-counts[c], c)))

    @property
    def size(self) -> int:
        """Ids in use, padding and unknown included (an embedding's ``num_chars``)."""
        return len(self.chars) + 2

    def encode(self, words: list[str], max_length: int) -> Tensor:
        """[len(words), max_length] int64 ids, right-padded with 0, cut at ``max_length``."""
        out = torch.zeros(len(words), max(max_length, 1), dtype=torch.long)
        for row, word in enumerate(words):
            ids = [self.index.get(c, UNK_ID) for c in word[:max_length]]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"chars": self.chars}, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Characters:
        return cls(json.loads((Path(directory) / FILE).read_text(encoding="utf-8"))["chars"])
