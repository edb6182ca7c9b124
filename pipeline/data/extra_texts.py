"""Extra language-model text (``data.corpus_extra``): more documents for the train stream
of ``task=lm`` on a labelled data set's texts (``data.as_corpus``), as ULMFiT's SST-2 recipe
adds MR's sentences.

Each entry is a labelled data config name (``mr``: the texts of all its splits) or a plain
text file (one document per line). The extra documents go to the train stream only, after
the main data set's train texts. Any extra document that is, or contains, a validation or
test text of the main data set is dropped, so the language model never reads the texts the
classifier is evaluated on: SST was built from MR's sentences (re-tokenised: ``it's`` ->
``it 's``, ``(`` -> ``-lrb-``, MR's two-sentence snippets split in two), so texts are
compared as word sequences (:func:`words`). Test texts are not held out when the run is
transductive (``data.as_corpus=[train,test]``): it trains on them anyway.

Finding the held-out texts in IMDb's 50,000 reviews takes about 12 s, so which documents an
entry drops is cached by content (:func:`dropped_indices`, in ``$SEQPIPE_CACHE/held_out``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.data.sources import data_presets, seqpipe_cache, write_cache_file
from pipeline.errors import ConfigError, DataError, did_you_mean

#: A held-out text this many words or longer is also found inside a longer extra document
#: (SST split MR's snippets into sentences); a shorter one only when it is the whole document
#: (``what 's next`` is in many reviews without being that sentence).
MIN_CONTAINED_WORDS = 4
#: Part of the key of the cached filter results: bump it when :func:`words` or the search change.
FILTER_VERSION = "1"

_BRACKETS = re.compile(r"-[lr][rsc]b-")  # PTB's -lrb- -rrb- -lsb- -rsb- -lcb- -rcb-
_NOT = re.compile(r"(\w)n't\b")  # don't -> do n't (PTB tokenisation, as SST's)
_CLITIC = re.compile(r"(\w)'(s|re|ve|ll|d|m)\b")  # it's -> it 's
_CANNOT = re.compile(r"\bcannot\b")
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> tuple[str, ...]:
    """A text's words, lower-cased, tokenised as the Penn Treebank (SST) does and without
    punctuation: MR's ``it's (so) good`` and SST's ``it 's -lrb- so -rrb- good`` are equal."""
    text = _BRACKETS.sub(" ", text.lower())
    text = _CANNOT.sub("can not", _CLITIC.sub(r"\1 '\2", _NOT.sub(r"\1 n't", text)))
    return tuple(_WORD.findall(text))


@dataclass
class ExtraTexts:
    """The kept extra documents, and per entry what was added and dropped."""

    texts: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return sum(source["dropped"] for source in self.sources)

    def listing(self) -> str:
        """Each entry and the documents it added, to print: ``mr 8,169, imdb 49,971``."""
        return ", ".join(f"{s['name']} {s['documents']:,}" for s in self.sources)

    def counts(self) -> str:
        """The same as a run param: ``mr:8169,imdb:49971``."""
        return ",".join(f"{s['name']}:{s['documents']}" for s in self.sources)


class HeldOut:
    """The main data set's evaluation texts, to find in an extra document."""

    def __init__(self, texts: list[str]) -> None:
        held = [w for w in map(words, texts) if w]
        self.whole = set(held)
        self.by_start: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for text in held:
            if len(text) >= MIN_CONTAINED_WORDS:
                self.by_start.setdefault(text[:MIN_CONTAINED_WORDS], []).append(text)
        digest = hashlib.sha256(f"{FILTER_VERSION}|{MIN_CONTAINED_WORDS}".encode())
        for text in sorted(self.whole):
            digest.update(("\x1f".join(text) + "\0").encode("utf-8", "replace"))
        self.digest = digest.hexdigest()

    def found_in(self, text: str) -> bool:
        """Whether ``text`` is a held-out text, or holds one of at least
        ``MIN_CONTAINED_WORDS`` words (word-aligned)."""
        doc = words(text)
        if doc in self.whole:
            return True
        for i in range(len(doc) - MIN_CONTAINED_WORDS + 1):
            for held in self.by_start.get(doc[i : i + MIN_CONTAINED_WORDS], ()):
                if doc[i : i + len(held)] == held:
                    return True
        return False


def entries(value: Any) -> list[str]:
    """``data.corpus_extra`` as a list of entries (a list, or one name or path)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def load_extra(config: Any, seed: int, held_out: HeldOut, key: str = "corpus_extra") -> ExtraTexts:
    """Every entry of ``config.<key>`` (``config``: the main labelled data config;
    ``corpus_extra``, or ``related_texts``: the texts word vectors are trained on) read, its
    documents that hold a held-out text dropped."""
    extra = ExtraTexts()
    for entry in entries(getattr(config, key)):
        texts = _read_entry(entry, config, seed, key)
        dropped = set(dropped_indices(texts, held_out))
        kept = [text for i, text in enumerate(texts) if i not in dropped]
        extra.texts += kept
        extra.sources.append(
            {"name": entry, "documents": len(kept), "dropped": len(texts) - len(kept)}
        )
    return extra


def dropped_indices(texts: list[str], held_out: HeldOut) -> list[int]:
    """The positions of the ``texts`` that hold a held-out text, read from the cache when
    these texts were searched for these held-out texts before; an unwritable or damaged
    cache is searched again."""
    digest = hashlib.sha256(held_out.digest.encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace") + b"\0")
    path = seqpipe_cache("held_out") / f"{digest.hexdigest()[:40]}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))["dropped"]
        if all(isinstance(i, int) and 0 <= i < len(texts) for i in cached):
            return cached
    except (OSError, ValueError, KeyError, TypeError):
        pass
    dropped = [i for i, text in enumerate(texts) if held_out.found_in(text)]
    entry = {"texts": len(texts), "dropped": dropped}
    write_cache_file(path, lambda out: json.dump(entry, out), binary=False)
    return dropped


def _read_entry(entry: str, config: Any, seed: int, key: str) -> list[str]:
    """The documents of one entry: a data config name's texts (all splits) or a file's
    non-blank lines, read through gzip where it ends in ``.gz`` (``key``: the setting that
    names it, for errors)."""
    if _is_data_name(entry, key):
        return _data_texts(entry, config, seed)
    path = Path(entry).expanduser()
    if not path.is_file():
        raise DataError(
            f"data.{key}: {entry} is no file ({path.resolve()} does not exist) and "
            f"no data config name ({', '.join(_labelled_names())}). Give a plain-text file, "
            "one document per line, or the name of a labelled data set."
        )
    opener = gzip.open if path.suffix == ".gz" else open  # a corpus often ships gzipped
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(
            f"data.{key}: cannot read {path} as UTF-8 text ({exc}); give a plain-text "
            "file (or one gzipped, .gz), one document per line."
        ) from exc
    return [line.strip() for line in lines if line.strip()]


def _is_data_name(entry: str, key: str) -> bool:
    """A bare word (no folder, no extension) names a data config; anything else is a path."""
    if "/" in entry or "\\" in entry or "." in entry:
        return False
    if entry in _labelled_names():
        return True
    if entry in data_presets():
        raise ConfigError(
            f"data.{key}: data={entry} is not a labelled data set; name one of "
            f"{', '.join(_labelled_names())}, or give a plain-text file (one document per "
            "line)."
        )
    raise ConfigError(
        f"data.{key}: unknown data config '{entry}'. "
        f"{did_you_mean(entry, _labelled_names())} Name a labelled data set "
        f"({', '.join(_labelled_names())}) or give a path to a plain-text file."
    )


def _data_texts(name: str, config: Any, seed: int) -> list[str]:
    from pipeline.data.data_config import preset
    from pipeline.data.labelled import load_data

    overrides = {k: getattr(config, k) for k in ("dir", "cache_dir") if getattr(config, k)}
    data = load_data(preset(name, **overrides), seed)
    return [text for split in data.splits.values() for text in split["text"]]


def _labelled_names() -> list[str]:
    """Data configs with labelled texts (no ``type``: not a corpus, tagged or generated;
    not ``files``, which needs the user's paths)."""
    return [name for name in data_presets(None) if name != "files"]
