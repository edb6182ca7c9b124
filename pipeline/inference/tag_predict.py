"""``python -m pipeline predict`` for a tagging model: one tag per word.

    python -m pipeline predict model=<tagging run id | runs:/... | best.pt> text="..." \
        | input=<sentences.txt | .csv | .jsonl | .conllu> [format=conllu] \
        [output=<tagged.conllu | tagged.jsonl>]

Raw text (``text=``, repeatable, or a file with one sentence per line / row) is split on
whitespace only: each whitespace-separated word gets exactly one tag, never re-split (so
``don't`` and ``well-known`` stay one word each). A CoNLL-U input (``.conllu``, or
``format=conllu``) gives its words (integer IDs; multiword ranges and empty nodes skipped)
and its comments, kept in the output. Without ``output=``, each sentence is printed as one
line of ``word/TAG``; ``output=x.conllu`` writes CoNLL-U (ID, FORM and the tag in the column
the model was trained on, UPOS or XPOS, every other column ``_``), ``output=x.jsonl`` one
``{"tokens": [...], "tags": [...]}`` per sentence.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, DataError

CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
TAGGED_OUTPUTS = (".conllu", ".jsonl")


@dataclass
class Sentences:
    """What predict tags: each sentence's words and its CoNLL-U comments (``# key = value``)."""

    words: list[list[str]]
    metadata: list[dict[str, str]] = field(default_factory=list)


def is_conllu(args: Any) -> bool:
    """The input is CoNLL-U: ``format=conllu``, or an ``input=`` named ``.conllu``."""
    if args.format:
        return args.format == "conllu"
    return bool(args.input) and Path(args.input).suffix.lower() == ".conllu"


def from_texts(texts: list[str], where: str) -> Sentences:
    """Raw sentences split on whitespace; one with no word is refused, naming it (``where``:
    ``text=`` or the input file)."""
    words = [text.split() for text in texts]
    for number, sentence in enumerate(words, 1):
        if not sentence:
            place = f"text #{number}" if where == "text=" else f"{where}, sentence {number}"
            raise DataError(
                f"predict {place} is empty: a tagging model tags words, one sentence per "
                "text (or line). Remove the empty one or give it its words."
            )
    metadata = [{"sent_id": str(i), "text": t.strip()} for i, t in enumerate(texts, 1)]
    return Sentences(words, metadata)


def read_conllu(path: str | Path) -> Sentences:
    """The words of each sentence of a CoNLL-U file (tags need not be there), and its
    comments; a malformed word line, a sentence without words or a file without sentences is
    one error naming the file (and line)."""
    import conllu

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"predict input={path} cannot be read ({exc}).") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.startswith("#") and len(line.split("\t")) != 10:
            raise DataError(
                f"predict input={path}, line {number}: a CoNLL-U word line needs 10 "
                f"TAB-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC); "
                f"this one has {len(line.split(chr(9)))}: {line[:60]!r}. For raw text (one "
                "sentence per line), name the file .txt or set format=text."
            )
    try:
        parsed = conllu.parse(text)
    except Exception as exc:  # conllu.ParseException and friends
        raise DataError(f"predict input={path} is not CoNLL-U: {exc}") from None
    sentences = Sentences([], [])
    for number, tokens in enumerate(parsed, 1):
        words = [str(t["form"]) for t in tokens if isinstance(t["id"], int)]
        if not words and not tokens:
            continue  # comments alone, e.g. at the end of the file
        if not words:
            raise DataError(
                f"predict input={path}: sentence {number} has no words (only multiword ranges "
                "or empty nodes). Remove it or give it its word lines."
            )
        sentences.words.append(words)
        sentences.metadata.append(dict(tokens.metadata))
    if not sentences.words:
        raise DataError(
            f"predict input={path} holds no CoNLL-U sentences (one word per line, 10 "
            "TAB-separated columns, a blank line after each sentence)."
        )
    return sentences


def conllu_text(sentences: Sentences, tags: list[list[str]], column: str) -> str:
    """CoNLL-U: each sentence's comments, then ID, FORM and ``column`` (upos or xpos); every
    other column ``_``."""
    from conllu.models import Token, TokenList

    blocks = []
    for words, row, metadata in zip(sentences.words, tags, sentences.metadata, strict=True):
        tokens = []
        for number, (word, tag) in enumerate(zip(words, row, strict=True), 1):
            token = dict.fromkeys(CONLLU_FIELDS)
            token |= {"id": number, "form": word, column: tag}
            tokens.append(Token(token))
        blocks.append(TokenList(tokens, metadata=metadata).serialize())
    return "".join(blocks)


def slashed(words: list[str], tags: list[str]) -> str:
    """``word/TAG word/TAG ...``: one sentence, one line."""
    return " ".join(f"{word}/{tag}" for word, tag in zip(words, tags, strict=True))


def write_tagged(path: str, sentences: Sentences, tags: list[list[str]], column: str) -> None:
    """``.conllu`` or ``.jsonl``; a write that fails (disk full...) is one error line."""
    out = Path(path)
    if out.suffix.lower() == ".conllu":
        text = conllu_text(sentences, tags, column)
    else:
        rows = zip(sentences.words, tags, strict=True)
        text = "".join(
            json.dumps({"tokens": w, "tags": t}, ensure_ascii=False) + "\n" for w, t in rows
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DataError(
            f"predict output={out} cannot be written ({exc.strerror or exc}). Free space or "
            "fix the permissions, or choose another path, and run predict again."
        ) from None


def check_tagger_args(args: Any) -> None:
    """A tagger writes .conllu or .jsonl (a table of labels does not fit tags)."""
    if args.output and Path(args.output).suffix.lower() not in TAGGED_OUTPUTS:
        raise ConfigError(
            f"predict output={args.output}: a tagging model writes {' or '.join(TAGGED_OUTPUTS)} "
            "(one tag per word); name the output file so."
        )


def predict_tags(tagger: Any, args: Any, sentences: Sentences, device: Any) -> None:
    """Tag ``sentences`` and print them as ``word/TAG`` lines or write ``args.output``."""
    check_tagger_args(args)
    tags = tagger.tag(sentences.words, batch_size=args.batch_size, device=device)
    if args.output:
        write_tagged(args.output, sentences, tags, tagger.tag_column)
        print(f"wrote {len(tags):,} tagged sentences to {args.output}", flush=True)
        return
    lines = (slashed(words, row) for words, row in zip(sentences.words, tags, strict=True))
    sys.stdout.write("".join(line + "\n" for line in lines))
