"""The built-in tokenizers: torchtext parity, round trips, determinism, edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.contracts import Tokenizer
from pipeline.errors import ConfigError
from pipeline.registry import tokenizers
from plugins.tokenizers.basic_english import (
    BasicEnglishConfig,
    BasicEnglishTokenizer,
    basic_english_tokenize,
    build_vocab,
)
from plugins.tokenizers.word import WordTokenizer, WordTokenizerConfig

FIXTURE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "fixtures"
    / "torchtext_basic_english.json"
)
TORCHTEXT = json.loads(FIXTURE.read_text(encoding="utf-8"))
CASES = TORCHTEXT["cases"]

TEXTS = [
    "This movie was GREAT!!! I'd watch it again.<br /><br />Really great.",
    "It's not bad... but not good either; 3/10.",
    "The plot was thin, the acting was fine, the music was great.",
    "Ünïcödé naïve café — 中文 😀 café",
    "",
]


def make(name: str, **fields: object) -> Tokenizer:
    config = tokenizers.config_from({"name": name, "min_freq": 1, **fields})
    tok = tokenizers.get(name).cls(config)
    tok.fit(TEXTS)
    return tok


NAMES = ["word", "basic_english"]


# -- torchtext parity (basic_english) ---------------------------------------------------


def test_fixture_is_torchtext_basic_english() -> None:
    assert TORCHTEXT["tokenizer"] == "basic_english"
    assert TORCHTEXT["torchtext_version"].startswith("0.18")
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[repr(c["text"])[:30] for c in CASES])
def test_basic_english_tokens_match_torchtext(case: dict) -> None:
    assert basic_english_tokenize(case["text"]) == case["tokens"]
    tok = BasicEnglishTokenizer(BasicEnglishConfig(name="basic_english", min_freq=1))
    tok.fit([case["text"]])
    assert tok.decode(tok.encode_batch([case["text"]])[0]) == " ".join(case["tokens"])


def test_basic_english_vocab_matches_torchtext() -> None:
    expected = TORCHTEXT["vocab_from_cases"]
    token_lists = [c["tokens"] for c in CASES]
    # build_vocab_from_iterator(tokens, specials=..., max_tokens=...), torchtext's specials
    assert (
        build_vocab(token_lists, expected["max_tokens"], 1, expected["specials"])
        == (expected["itos"])
    )
    # The tokenizer: same words in the same order, behind our specials <pad>=0, <unk>=1.
    config = BasicEnglishConfig(name="basic_english", vocab_size=expected["max_tokens"], min_freq=1)
    tok = BasicEnglishTokenizer(config)
    tok.fit(c["text"] for c in CASES)
    n_specials = len(expected["specials"])
    assert tok.vocab()[:2] == ["<pad>", "<unk>"]
    assert tok.vocab()[2:] == expected["itos"][n_specials:]
    assert tok.vocab_size == expected["max_tokens"]
    # An unseen word maps to <unk> (torchtext's default index was its <unk>, id 0 there).
    assert expected["itos"][expected["lookup_unseen_word"][0]] == "<unk>"
    assert tok.encode_batch(["zzzunseenzzz"]) == [[tok.unk_id]]


def test_build_vocab_ties_min_freq_and_specials_like_torchtext() -> None:
    tokens = [["b", "a", "c", "c", "<pad>", "<pad>", "<pad>"], ["d", "a"]]
    # counts: <pad> 3, a 2, c 2, b 1, d 1; ties by token; specials dropped after truncation
    assert build_vocab(tokens, None) == ["<pad>", "<unk>", "a", "c", "b", "d"]
    assert build_vocab(tokens, 5) == ["<pad>", "<unk>", "a", "c"]  # <pad> took a slot
    assert build_vocab(tokens, None, min_freq=2) == ["<pad>", "<unk>", "a", "c"]
    assert build_vocab(tokens, 2) == ["<pad>", "<unk>"]


# -- both tokenizers --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_registered_through_the_public_registry(name: str) -> None:
    entry = tokenizers.get(name)
    assert entry.cls is {"word": WordTokenizer, "basic_english": BasicEnglishTokenizer}[name]
    tok = entry.cls(entry.config(name=name))
    assert isinstance(tok, Tokenizer)


@pytest.mark.parametrize("name", NAMES)
def test_specials_and_protocol(name: str) -> None:
    tok = make(name)
    assert isinstance(tok, Tokenizer)
    assert tok.pad_id == 0 and tok.unk_id == 1
    assert tok.vocab()[:2] == ["<pad>", "<unk>"]
    assert tok.vocab_size == len(tok.vocab())
    ids = tok.encode_batch(TEXTS)
    assert len(ids) == len(TEXTS)
    assert all(isinstance(i, int) and 1 <= i < tok.vocab_size for row in ids for i in row)
    assert ids[-1] == []  # empty text: no tokens
    assert "great" in tok.decode(ids[0]).split()


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    tok = make(name)
    tok.save(tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved["name"] == name and saved["min_freq"] == 1
    back = type(tok).load(tmp_path)
    probe = [*TEXTS, "words never seen before", "MiXeD CaSe café 😀"]
    assert back.encode_batch(probe) == tok.encode_batch(probe)
    assert back.fingerprint() == tok.fingerprint()
    assert back.vocab() == tok.vocab()
    assert back.config == tok.config


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint_is_stable_and_tracks_the_fitted_state(name: str) -> None:
    a, b = make(name), make(name)
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64
    assert make(name, vocab_size=5).fingerprint() != a.fingerprint()
    other = tokenizers.get(name).cls(a.config)
    other.fit(TEXTS[:2])
    assert other.fingerprint() != a.fingerprint()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_ties_do_not_depend_on_text_order(name: str) -> None:
    texts = ["zeta beta alpha", "gamma delta zeta", "epsilon"]
    a = make(name)
    a.fit(texts)
    b = make(name)
    b.fit(list(reversed(texts)))
    # zeta (2) first, then the count-1 words in code point order: both libraries sort so.
    assert a.vocab() == b.vocab()
    assert a.vocab()[2:] == ["zeta", "alpha", "beta", "delta", "epsilon", "gamma"]


@pytest.mark.parametrize("name", NAMES)
def test_vocab_size_and_min_freq(name: str) -> None:
    texts = ["a a a b b c", "A B C d"]  # a 4, b 3, c 2, d 1
    small = make(name, vocab_size=4)
    small.fit(texts)
    assert small.vocab() == ["<pad>", "<unk>", "a", "b"]
    assert small.encode_batch(["a b c d"]) == [[2, 3, 1, 1]]
    frequent = make(name, min_freq=2)
    frequent.fit(texts)
    assert frequent.vocab() == ["<pad>", "<unk>", "a", "b", "c"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("field,value", [("vocab_size", 1), ("min_freq", 0)])
def test_out_of_range_config_is_a_config_error(name: str, field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=field):
        tokenizers.config_from({"name": name, field: value})


@pytest.mark.parametrize("name", NAMES)
def test_only_specials_vocab_works(name: str) -> None:
    tok = make(name, vocab_size=2)
    assert tok.vocab() == ["<pad>", "<unk>"]
    assert tok.encode_batch(["anything at all", ""]) == [[1, 1, 1], []]


@pytest.mark.parametrize("name", NAMES)
def test_literal_specials_in_text_never_become_padding(name: str) -> None:
    tok = make(name)
    ids = tok.encode_batch(["the <pad> was <unk> great"])[0]
    assert tok.pad_id not in ids
    assert tok.decode([0, 1, *ids, 0, 0]) == tok.decode(ids)  # specials dropped


@pytest.mark.parametrize("name", NAMES)
def test_unicode(name: str) -> None:
    tok = make(name)
    ids = tok.encode_batch(["CAFÉ Ünïcödé 中文 😀"])[0]
    words = tok.decode(ids).split()
    assert "café" in words and "ünïcödé" in words
    assert tok.unk_id not in ids[:2]


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_tokenizer_says_so(name: str) -> None:
    entry = tokenizers.get(name)
    tok = entry.cls(entry.config(name=name))
    with pytest.raises(RuntimeError, match="not fitted"):
        tok.encode_batch(["x"])
    with pytest.raises(RuntimeError, match="not fitted"):
        tok.fingerprint()


# -- word specifics ---------------------------------------------------------------------


def test_word_normalizer_drops_html_breaks_and_lowercases() -> None:
    tok = make("word")
    assert tok.tokenize("Hello<br />World<br/>again<BR>end") == ["hello", "world", "again", "end"]
    assert tok.tokenize("Don't stop!!!") == ["don", "'", "t", "stop", "!!!"]
    cased = make("word", lowercase=False)
    assert cased.tokenize("The END") == ["The", "END"]
    assert "The" in cased.vocab() and "the" in cased.vocab()


def test_word_saves_a_hugging_face_tokenizer_json(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as HFTokenizer

    tok = make("word")
    tok.save(tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert hf.encode("the plot was great").ids == tok.encode_batch(["the plot was great"])[0]


def test_word_config_defaults() -> None:
    config = WordTokenizerConfig()
    assert (config.vocab_size, config.min_freq, config.lowercase) == (30000, 2, True)
    basic = BasicEnglishConfig()
    assert (basic.vocab_size, basic.min_freq) == (30000, 1)


def test_word_extend_adds_the_missing_words_after_its_own(tmp_path: Path) -> None:
    tok = make("word", min_freq=2, vocab_size=8)
    tok.fit(["the film the film was"])  # <pad> <unk> film the (was: once)
    before = tok.vocab()
    ids = tok.encode("the film was superb")
    added = tok.extend(["superb superb superb was was the", "ok ok rare"])
    # train's words keep their ids; then the others by count (superb 3, ok 2, was 2; ties by
    # the word), once each, min_freq kept (rare: once), up to vocab_size (8: all fit here)
    assert added == 3 and tok.vocab() == [*before, "superb", "ok", "was"]
    assert tok.encode("the film was superb") == [*ids[:2], 6, 4]
    assert ids[2:] == [1, 1]  # were <unk>
    tok.save(tmp_path)
    assert WordTokenizer.load(tmp_path).encode("superb ok") == [4, 5]  # saved extended
    capped = make("word", min_freq=1, vocab_size=5)
    capped.fit(["a b"])  # <pad> <unk> a b
    assert capped.extend(["c c d e"]) == 1 and capped.vocab()[-1] == "c"  # up to vocab_size
    assert capped.extend(["z"]) == 0  # full
