"""The kit for tokenizer plugins: ``check_tokenizer("my_tokenizer")``.

A tokenizer (``pipeline.contracts.Tokenizer``) is fitted on a small corpus (each text three
times, so ``min_freq`` up to 3 keeps every token), then checked:

* ``config``: a ``ComponentConfig`` dataclass that survives a round trip through OmegaConf;
* ``fit``: ``fit(texts)`` accepts an iterable of strings (later checks need it);
* ``ids``: ``encode_batch`` gives lists of ints in ``[0, vocab_size)``; ``pad_id`` is one of
  them and never comes out of real text (padding ids only ever come from the batcher);
* ``round trip``: for text whose tokens are all in the vocabulary, ``decode(encode(text))``
  is the normalised text: the tokenizer's ``tokenize(text)`` joined by its ``separator``
  (``" "`` unless it says otherwise: lowercased words for ``word``, the characters themselves
  for ``char``, torchtext's tokens for ``basic_english``); and encoding that again gives the
  same ids (for any tokenizer, ``tokenize`` or not);
* ``save/load``: ``type(tok).load(directory)`` after ``save(directory)`` gives identical ids,
  ``vocab_size``, ``pad_id`` and ``fingerprint()``;
* ``fingerprint``: a string, the same for two fits of the same texts, another for other texts
  (it keys the tokenization cache: a stale hit would train on the wrong ids);
* ``unicode``: empty text, whitespace, emoji, accents and CJK encode without crashing, to
  valid ids, and decode.

Each check runs even when another failed; a broken tokenizer is a named failure, never a crash.
"""

from __future__ import annotations

import tempfile
from typing import Any

from pipeline import registry
from pipeline.testing.report import Report, build, check_config, label, resolve

CORPUS = (
    "The cat sat on the mat.",
    "A dog, a frog and a log!",
    "Don't stop: it's fine (really)?",
    "numbers 12 and 3.5 too",
)
OTHER_CORPUS = ("entirely different words here", "zebra quartz jumps")
UNICODE = ("", "   \n\t ", "😀 emoji 🎉", "café naïve résumé Ünïcödé", "中文 日本語 한국어")


def check_tokenizer(
    tokenizer: str | type, config: Any = None, *, corpus: tuple[str, ...] = CORPUS, **fields: Any
) -> Report:
    """Check a tokenizer against the contract; return a report (``.assert_ok()`` raises).

    ``tokenizer`` is a registered name or a class (then pass ``config``); ``fields`` set the
    registered config's fields. It is built as ``cls(config)`` and fitted on ``corpus``.
    """
    report = Report("tokenizer", label(tokenizer))
    found = resolve(report, registry.tokenizers, tokenizer, config, fields)
    if found is None:
        return report
    entry, config = found
    report.run("config", lambda: check_config(config, registry.tokenizers, entry.name))

    def fitted(texts: tuple[str, ...], made: Any = None) -> Any:
        made = entry.cls(config) if made is None else made
        made.fit(list(texts) * 3)
        return made

    tok = build(report, f"{entry.cls.__qualname__}(config)", lambda: entry.cls(config))
    if tok is None:
        return report
    report.run("fit", lambda: fitted(corpus, tok) and None)
    if "fit" not in report.passed:
        return report
    report.run("ids", lambda: _check_ids(tok, corpus))
    report.run("round trip", lambda: _check_round_trip(tok, corpus))
    report.run("save/load", lambda: _check_save_load(tok, corpus))
    report.run("fingerprint", lambda: _check_fingerprint(tok, fitted, corpus))
    report.run("unicode", lambda: _check_unicode(tok))
    return report


def _invalid_ids(tok: Any, texts: tuple[str, ...]) -> str | None:
    """What is wrong with the ids of ``texts``, or None."""
    rows = tok.encode_batch(list(texts))
    vocab_size, pad_id = tok.vocab_size, tok.pad_id
    if not isinstance(rows, list) or len(rows) != len(texts):
        return f"encode_batch of {len(texts)} texts gave {type(rows).__name__} {rows!r:.80}"
    for text, ids in zip(texts, rows, strict=True):
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < vocab_size]
        if bad:
            return f"{text!r} encodes to {bad[:5]}, not ints in [0, vocab_size={vocab_size})"
        if pad_id in ids:
            return (
                f"{text!r} encodes to pad_id ({pad_id}) among its ids {ids}: pad_id must "
                "never come out of real text (map unknown tokens to an <unk> id instead)"
            )
    return None


def _check_ids(tok: Any, corpus: tuple[str, ...]) -> str | None:
    vocab_size, pad_id = tok.vocab_size, tok.pad_id
    if not isinstance(vocab_size, int) or vocab_size < 1:
        return f"vocab_size must be a positive int, got {vocab_size!r}"
    if not isinstance(pad_id, int) or not 0 <= pad_id < vocab_size:
        return f"pad_id must be an int in [0, vocab_size={vocab_size}), got {pad_id!r}"
    return _invalid_ids(tok, corpus)


def _check_round_trip(tok: Any, corpus: tuple[str, ...]) -> str | None:
    unk = getattr(tok, "unk_id", None)
    rows = tok.encode_batch(list(corpus))
    known = [(t, ids) for t, ids in zip(corpus, rows, strict=True) if unk is None or unk not in ids]
    if not known:
        return "no text of the corpus encodes without unk_id after fitting on it"
    separator = getattr(tok, "separator", " ")
    for text, ids in known:
        decoded = tok.decode(ids)
        if hasattr(tok, "tokenize"):
            expected = separator.join(tok.tokenize(text))
            if decoded != expected:
                return (
                    f"decode(encode({text!r})) is {decoded!r}, expected the normalised text "
                    f"{expected!r} (tokenize(text) joined by {separator!r})"
                )
        again = tok.encode_batch([decoded])[0]
        if again != ids:
            return f"encoding decode(encode({text!r})) = {decoded!r} gives {again}, not {ids}"
    return None


def _check_save_load(tok: Any, corpus: tuple[str, ...]) -> str | None:
    texts = [*corpus, *UNICODE]
    with tempfile.TemporaryDirectory() as directory:
        tok.save(directory)
        loaded = type(tok).load(directory)
    for what in ("vocab_size", "pad_id"):
        if getattr(loaded, what) != getattr(tok, what):
            return f"{what} is {getattr(loaded, what)!r} after load, {getattr(tok, what)!r} before"
    for text, before, after in zip(
        texts, tok.encode_batch(texts), loaded.encode_batch(texts), strict=True
    ):
        if before != after:
            return f"{text!r} encodes to {after} after save/load, {before} before"
    if loaded.fingerprint() != tok.fingerprint():
        return "the fingerprint changes through save/load"
    return None


def _check_fingerprint(tok: Any, fitted: Any, corpus: tuple[str, ...]) -> str | None:
    first = tok.fingerprint()
    if not isinstance(first, str) or not first:
        return f"fingerprint() must be a non-empty str, got {first!r}"
    if fitted(corpus).fingerprint() != first:
        return "two fits of the same texts give different fingerprints (it must be stable)"
    if fitted(OTHER_CORPUS).fingerprint() == first:
        return "fits of different texts give the same fingerprint (it must hash the vocabulary)"
    return None


def _check_unicode(tok: Any) -> str | None:
    problem = _invalid_ids(tok, UNICODE)
    if problem:
        return problem
    for text, ids in zip(UNICODE, tok.encode_batch(list(UNICODE)), strict=True):
        decoded = tok.decode(ids)
        if not isinstance(decoded, str):
            return f"decode of {text!r}'s ids gave {type(decoded).__name__}, not str"
    return None
