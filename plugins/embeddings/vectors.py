"""Word vectors from a file (word2vec text or binary, GloVe, fastText ``.vec``), read with
gensim and aligned to the run's fitted vocabulary.

A vocabulary token takes the row of the same word, else of its lowercase form, else of a
word whose lowercase form is its own (case fallback). The aligned rows are cached under the
vectors' cache folder, keyed by the file's content (size and sha256) and the vocabulary, so
a large file is parsed once, not on every run.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pipeline.data.fingerprint import files_digest
from pipeline.data.sources import seqpipe_cache, write_cache_file
from pipeline.errors import ConfigError, DataError

#: (binary, no_header) of each ``embedding.format`` gensim reads.
FORMATS = {
    "word2vec": (False, False),
    "word2vec_binary": (True, False),
    "glove": (False, True),
    "fasttext": (False, False),
}
ALIGN_VERSION = "1"  # part of every cache key: bump it when the aligned rows change


@dataclass
class Aligned:
    """Vectors in vocabulary order: ``vectors[i]`` is token i's, zero where ``found[i]`` is
    False; ``std`` is the spread of the rows found (it initialises the others)."""

    vectors: Tensor  # [V, D] float32
    found: Tensor  # [V] bool
    std: float
    source: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def initial(self, pad_id: int) -> Tensor:
        """The table's first weights: the vectors found, N(0, std) elsewhere, zero padding."""
        rows = torch.randn(self.vectors.shape) * self.std
        rows[self.found] = self.vectors[self.found]
        rows[pad_id] = 0.0
        return rows

    def coverage(self, pad_id: int) -> str:
        """``8,412 of 10,001 words (84.1 %) from glove.6B.100d.txt`` (padding not counted)."""
        total = len(self.found) - 1
        hits = int(self.found.sum()) - int(self.found[pad_id])
        share = 100.0 * hits / total if total else 0.0
        return f"{hits:,} of {total:,} words ({share:.1f} %) from {self.source}"


def quiet_gensim() -> None:
    """gensim logs every load and epoch at INFO, which Hydra's console shows: keep warnings."""
    logging.getLogger("gensim").setLevel(logging.WARNING)


def cache_root(cache_dir: str) -> Path:
    """``embedding.cache_dir``, else ``$SEQPIPE_CACHE/vectors``, else ~/.cache/seqpipe/vectors."""
    if cache_dir:
        return Path(os.path.expandvars(cache_dir)).expanduser()
    return seqpipe_cache("vectors")


def detect_format(path: Path) -> str:
    """word2vec_binary, word2vec (text with a ``count dim`` header) or glove (no header)."""
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    first, _, rest = head.partition(b"\n")
    parts = first.split()
    header = len(parts) == 2 and all(p.isdigit() for p in parts)
    if header and _binary(rest):
        return "word2vec_binary"
    if _binary(head):
        raise DataError(
            f"Cannot read the word vectors {path}: it is binary but has no word2vec "
            "'count dim' header line. Give a word2vec (text or binary), GloVe or fastText "
            ".vec file, or name its format with embedding.format."
        )
    return "word2vec" if header else "glove"


def _binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return True
    return False


def read_vectors(path: Path, fmt: str) -> Any:
    """The file's ``KeyedVectors``; an unreadable file is one DataError naming it."""
    from gensim.models import KeyedVectors

    quiet_gensim()
    binary, no_header = FORMATS[fmt]
    try:
        return KeyedVectors.load_word2vec_format(
            str(path), binary=binary, no_header=no_header, unicode_errors="ignore"
        )
    except Exception as exc:  # gensim raises ValueError, EOFError, IndexError, ...
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise DataError(
            f"Cannot read the word vectors {path} as {fmt} ({reason}). Check that the file "
            "is complete and its format: set embedding.format to word2vec, "
            "word2vec_binary, glove or fasttext (auto guesses it from the file)."
        ) from None


def align(vectors: Any, tokens: list[str], source: str) -> Aligned:
    """Each token's row of ``vectors``: exact word, then lowercase, then any-case match."""
    index = vectors.key_to_index
    folded: dict[str, int] | None = None
    rows = torch.zeros(len(tokens), vectors.vector_size)
    found = torch.zeros(len(tokens), dtype=torch.bool)
    for i, token in enumerate(tokens):
        j = index.get(token, index.get(token.lower()))
        if j is None:
            if folded is None:  # built once, and only when needed: the first key wins
                folded = {}
                for key, k in index.items():
                    folded.setdefault(str(key).lower(), k)
            j = folded.get(token.lower())
        if j is not None:
            rows[i] = torch.from_numpy(vectors.vectors[j].copy())
            found[i] = True
    std = float(rows[found].std()) if int(found.sum()) > 1 else float(vectors.vectors.std())
    return Aligned(rows, found, std if std > 0 else 1.0, source)


def aligned_vectors(path_text: str, fmt: str, tokens: list[str], cache_dir: str) -> Aligned:
    """The vectors of ``path_text`` aligned to ``tokens``, from the cache when it has them."""
    path = Path(os.path.expandvars(path_text)).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"embedding.path={path_text}: {path.absolute()} {what}. Point it at a word "
            "vectors file (word2vec, GloVe or fastText .vec)."
        )
    fmt = detect_format(path) if fmt == "auto" else fmt
    key = json.dumps(
        {"file": files_digest([path]), "format": fmt, "tokens": tokens, "v": ALIGN_VERSION}
    )
    cached = cache_root(cache_dir) / f"aligned-{hashlib.sha256(key.encode()).hexdigest()[:32]}.pt"
    if cached.is_file():
        try:
            saved = torch.load(cached, weights_only=True)
            return Aligned(saved["vectors"], saved["found"], saved["std"], path.name)
        except Exception:  # a damaged cache entry: read the file again and replace it
            pass
    aligned = align(read_vectors(path, fmt), tokens, path.name)
    _store(cached, aligned)
    return aligned


def _store(target: Path, aligned: Aligned) -> None:
    """The aligned rows, written as a cache entry (an unwritable cache caches nothing)."""
    saved = {"vectors": aligned.vectors, "found": aligned.found, "std": aligned.std}
    write_cache_file(target, lambda out: torch.save(saved, out))
