"""``embedding.train=word2vec``: vectors trained with gensim's Word2Vec on the run's training
texts (split into words by the run's tokenizer), any ``embedding.extra_texts`` files and any
related texts given in memory (``data.related_texts``, for ``embedding=learned``), before the
model is built. Cached by content: the texts, the tokenizer and the settings
name a ``.vec`` file (word2vec text format) that a second identical run reads instead of
training again. One worker and the run's seed make the training deterministic.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.data.fingerprint import files_digest
from pipeline.errors import ConfigError, StorageError
from plugins.embeddings.vectors import cache_root, quiet_gensim

DEFAULT_DIM = 100  # word2vec's own default size, used when embedding.dim=0
WORD2VEC_VERSION = "1"  # part of the cache key: bump it when the training changes


def extra_files(paths: list[str]) -> list[Path]:
    """``embedding.extra_texts`` as paths; a missing one is a ConfigError naming it."""
    found = []
    for text in paths:
        path = Path(os.path.expandvars(str(text))).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"embedding.extra_texts names {text}, but {path.absolute()} is not a file. "
                "Give plain-text files (one text a line), or leave embedding.extra_texts=[]."
            )
        found.append(path)
    return found


def settings(config: Any, vocabulary: Any) -> dict[str, Any]:
    """What the vectors depend on besides the texts."""
    import gensim

    return {
        "dim": config.dim or DEFAULT_DIM,
        "window": config.window,
        "min_count": config.min_count,
        "epochs": config.epochs,
        "seed": vocabulary.seed,
        "tokenizer": vocabulary.tokenizer_fingerprint,
        "gensim": gensim.__version__,
        "v": WORD2VEC_VERSION,
    }


def cache_key(
    config: Any, vocabulary: Any, extras: list[Path], related: list[str] | None = None
) -> str:
    """sha256 of the training texts, the extra files' content, the related texts (none: the
    key is as it always was) and the settings."""
    digest = hashlib.sha256(json.dumps(settings(config, vocabulary), sort_keys=True).encode())
    for text in vocabulary.texts():
        digest.update(text.encode("utf-8", "replace") + b"\0")
    digest.update(files_digest(extras).encode())
    if related:
        digest.update(b"related\0")
        for text in related:
            digest.update(text.encode("utf-8", "replace") + b"\0")
    return digest.hexdigest()[:32]


def sentences(
    vocabulary: Any, extras: list[Path], related: list[str] | None = None
) -> Iterator[list[str]]:
    """The training texts, then every line of the extra files, then the related texts, as
    lists of words."""
    for text in vocabulary.texts():
        yield vocabulary.tokenize(text)
    for path in extras:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    yield vocabulary.tokenize(line)
    for text in related or []:
        yield vocabulary.tokenize(text)


def trained_vectors(
    config: Any, vocabulary: Any, related: list[str] | None = None
) -> tuple[Path, bool]:
    """The ``.vec`` file of vectors trained for this run (on ``related`` texts too), and
    whether it was trained now (False: read from the cache)."""
    extras = extra_files(list(config.extra_texts or []))
    key = cache_key(config, vocabulary, extras, related)
    target = cache_root(config.cache_dir) / f"word2vec-{key}.vec"
    if target.is_file():
        return target, False
    from gensim.models import Word2Vec

    quiet_gensim()
    options = settings(config, vocabulary)
    try:
        model = Word2Vec(
            sentences=list(sentences(vocabulary, extras, related)),
            vector_size=options["dim"],
            window=config.window,
            min_count=config.min_count,
            epochs=config.epochs,
            workers=1,  # with the seed: the same vectors on every run
            seed=vocabulary.seed,
        )
    except RuntimeError:  # gensim: "you must first build vocabulary before training"
        raise ConfigError(
            f"embedding.train=word2vec found no word seen at least embedding.min_count="
            f"{config.min_count} times in the training texts. Lower embedding.min_count or "
            "add texts with embedding.extra_texts."
        ) from None
    _save(model.wv, target)
    return target, True


def _save(vectors: Any, target: Path) -> None:
    """Write to a temporary file, then rename: a reader never sees half a file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".word2vec-", suffix=".vec", dir=target.parent)
        os.close(fd)
        vectors.save_word2vec_format(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise StorageError(
            f"Cannot write the trained word vectors to {target.parent} ({exc.strerror or exc})."
            " Set embedding.cache_dir to a writable folder."
        ) from None
