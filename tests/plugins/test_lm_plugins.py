"""Language-modelling plugins: the char tokenizer, word's split/eos options, the LM head."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline import registry
from pipeline.contracts import Tokenizer
from pipeline.data.tokenize import fit_tokenizer, load_tokenizer
from pipeline.errors import ConfigError
from plugins.heads.lm import LMHead, LMHeadConfig
from plugins.tokenizers.char import CharTokenizer, CharTokenizerConfig
from plugins.tokenizers.word import WordTokenizer, WordTokenizerConfig

TEXT = "To be, or not to be:\nthat is the question.\n\n  Whether 'tis nobler\tin the mind"


def char(texts: list[str] | None = None, **fields: object) -> CharTokenizer:
    config = registry.tokenizers.config_from({"name": "char", **fields})
    tok = registry.tokenizers.get("char").cls(config)
    tok.fit([TEXT] if texts is None else texts)
    return tok


def word(texts: list[str], **fields: object) -> WordTokenizer:
    base = {"name": "word", "min_freq": 1, "lowercase": False, "split": "whitespace"}
    config = registry.tokenizers.config_from({**base, **fields})
    tok = WordTokenizer(config)
    tok.fit(texts)
    return tok


# -- char --------------------------------------------------------------------------------


def test_char_is_registered_with_its_config() -> None:
    entry = registry.tokenizers.get("char")
    assert entry.cls is CharTokenizer and entry.config is CharTokenizerConfig
    config = CharTokenizerConfig()
    assert (config.lowercase, config.min_freq, config.vocab_size) == (False, 1, None)
    tok = entry.cls(entry.config(name="char"))
    assert isinstance(tok, Tokenizer)
    assert tok.pad_id == 0 and tok.unk_id == 1 and tok.eos_id is None
    assert tok.separator == ""
    with pytest.raises(RuntimeError, match="not fitted"):
        tok.encode_batch(["x"])


def test_char_round_trip_is_exact_with_newlines_and_whitespace() -> None:
    tok = char()
    ids = tok.encode_batch([TEXT, "", "\n"])
    assert len(ids[0]) == len(TEXT)
    assert tok.unk_id not in ids[0]
    assert tok.decode(ids[0]) == TEXT
    assert ids[1] == [] and tok.decode(ids[2]) == "\n"
    assert tok.tokenize("a\nb") == ["a", "\n", "b"]
    assert tok.vocab_size == len(tok.vocab()) == 2 + len(set(TEXT))


def test_char_vocab_order_is_count_then_character_whatever_the_text_order() -> None:
    texts = ["cab", "bca\n", "b"]  # b 3, a 2, c 2, \n 1
    a, b = char(texts), char(list(reversed(texts)))
    assert a.vocab() == b.vocab() == ["<pad>", "<unk>", "b", "a", "c", "\n"]
    assert a.encode_batch(["abc\n"]) == [[3, 2, 4, 5]]


def test_char_unknown_characters_become_unk_and_decode_drops_specials() -> None:
    tok = char(["abc"])
    assert tok.encode_batch(["abzc", "😀"]) == [[2, 3, 1, 4], [1]]
    assert tok.decode([0, 2, 1, 3, 0]) == "ab"


def test_char_min_freq_vocab_size_and_lowercase() -> None:
    texts = ["aaaBBc", "Ab"]  # a 4, B 2, b 1, c 1, A 1
    assert char(texts, min_freq=2).vocab()[2:] == ["a", "B"]
    assert char(texts, vocab_size=3).vocab() == ["<pad>", "<unk>", "a"]
    lower = char(texts, lowercase=True)
    assert lower.vocab()[2:] == ["a", "b", "c"]
    assert lower.encode_batch(["AbC"]) == lower.encode_batch(["abc"])
    with pytest.raises(ConfigError, match="vocab_size"):
        registry.tokenizers.config_from({"name": "char", "vocab_size": 1})
    with pytest.raises(ConfigError, match="min_freq"):
        registry.tokenizers.config_from({"name": "char", "min_freq": 0})


def test_char_save_load_and_fingerprint(tmp_path: Path) -> None:
    tok = char()
    tok.save(tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved == {"name": "char", "lowercase": False, "min_freq": 1, "vocab_size": None}
    back = load_tokenizer(tmp_path)  # the stage's loader picks the class by name
    assert type(back) is CharTokenizer
    assert back.vocab() == tok.vocab() and back.config == tok.config
    probe = [TEXT, "unseen: ZQX 😀"]
    assert back.encode_batch(probe) == tok.encode_batch(probe)
    assert back.fingerprint() == tok.fingerprint() == char().fingerprint()
    assert len(tok.fingerprint()) == 64
    assert char(lowercase=True).fingerprint() != tok.fingerprint()
    assert char([TEXT[:10]]).fingerprint() != tok.fingerprint()
    assert "vocab_size=" in repr(tok)


def test_char_fits_through_the_tokenize_stage() -> None:
    tok = fit_tokenizer({"name": "char"}, ["hello\n", "world\n"])
    assert isinstance(tok, CharTokenizer)
    assert tok.decode(tok.encode_batch(["hello world\n"])[0]) == "helloworld\n"  # " " unseen


# -- word: split and eos -----------------------------------------------------------------


def test_word_defaults_keep_the_old_behaviour() -> None:
    config = WordTokenizerConfig()
    assert (config.split, config.eos) == ("words", False)
    tok = WordTokenizer(WordTokenizerConfig(name="word", min_freq=1))
    tok.fit(["a b-c <d>"])
    assert tok.tokenize("a b-c <d>") == ["a", "b", "-", "c", "<", "d", ">"]
    assert tok.eos_id is None and tok.separator == " "
    assert tok.vocab()[:2] == ["<pad>", "<unk>"]


def test_word_whitespace_split_keeps_literal_unk_as_the_unk_id() -> None:
    tok = word(["the <unk> sat on the <unk> mat", "a b-c d.e"])
    assert "<unk>" not in tok.vocab()[2:]  # not a word of its own
    assert tok.vocab()[:2] == ["<pad>", "<unk>"] and len(set(tok.vocab())) == tok.vocab_size
    assert tok.tokenize("the <unk> sat") == ["the", "<unk>", "sat"]
    assert tok.tokenize("b-c d.e") == ["b-c", "d.e"]
    ids = tok.encode_batch(["the <unk> mat", "<pad> <eos> b-c"])
    assert ids[0] == [tok.vocab().index("the"), 1, tok.vocab().index("mat")]
    assert ids[1] == [1, 1, tok.vocab().index("b-c")]  # <pad> -> unk; <eos> unseen (eos off)


def test_word_literal_unk_is_one_token_in_words_mode_too() -> None:
    tok = WordTokenizer(WordTokenizerConfig(name="word", min_freq=1))
    tok.fit(["x <unk> y", "(<unk>)"])
    assert not {"<", ">", "unk", "<unk>"} & set(tok.vocab()[2:])
    assert tok.tokenize("x (<UNK>) y") == ["x", "(", "<unk>", ")", "y"]  # lowercased
    assert tok.encode_batch(["x <unk> y <pad>"])[0] == [
        tok.vocab().index("x"),
        1,
        tok.vocab().index("y"),
        1,
    ]


def test_word_eos_is_id_2_and_ends_every_text(tmp_path: Path) -> None:
    tok = word(["a b a", "c"], eos=True)
    assert tok.vocab() == ["<pad>", "<unk>", "<eos>", "a", "b", "c"]
    assert tok.eos_id == 2 and tok.vocab_size == 6
    assert tok.encode_batch(["a c", "", "z\nb"]) == [[3, 5, 2], [2], [1, 4, 2]]
    assert tok.decode([3, 5, 2, 0]) == "a c"  # specials dropped
    assert tok.encode_batch(["a <eos> b"]) == [[3, 1, 4, 2]]  # only the tokenizer adds eos
    tok.save(tmp_path)
    back = load_tokenizer(tmp_path)
    assert back.eos_id == 2 and back.encode_batch(["a c", ""]) == [[3, 5, 2], [2]]
    assert back.fingerprint() == tok.fingerprint()
    plain = word(["a b a", "c"])
    assert plain.eos_id is None and plain.encode_batch(["a c"]) == [[2, 4]]
    assert plain.fingerprint() != tok.fingerprint()
    assert word(["a b a", "c"], split="words").fingerprint() != plain.fingerprint()


def test_word_eos_needs_room_and_split_is_checked() -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        WordTokenizer(WordTokenizerConfig(name="word", vocab_size=2, eos=True))
    with pytest.raises(ConfigError, match="split"):
        registry.tokenizers.config_from({"name": "word", "split": "spaces"})


def test_word_ptb_counts(data_dir: Path) -> None:
    """Mikolov's PTB: 10k words incl. <unk> and <eos> (+ our <pad>); 929k train tokens."""
    with gzip.open(data_dir / "ptb" / "ptb.train.txt.gz", "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 42_068
    tok = word(lines, vocab_size=1_000_000, eos=True)
    assert tok.vocab_size == 10_001  # <pad> + <unk> + <eos> + 9,998 other word types
    assert tok.vocab()[:3] == ["<pad>", "<unk>", "<eos>"]
    ids = tok.encode_batch(lines)
    flat = [i for row in ids for i in row]
    assert len(flat) == 929_589  # 887,521 words + 42,068 <eos>
    assert flat.count(2) == 42_068 and flat.count(1) == 45_020 and 0 not in flat
    assert all(row[-1] == 2 for row in ids)


# -- LM head -----------------------------------------------------------------------------


def head(input_dim: int = 8, vocab: int = 11, **fields: object) -> LMHead:
    config = registry.heads.config_from({"name": "lm", **fields})
    return registry.heads.get("lm").cls(config, input_dim, vocab)


def test_lm_head_is_registered_with_its_config() -> None:
    entry = registry.heads.get("lm")
    assert entry.cls is LMHead and entry.config is LMHeadConfig
    assert (LMHeadConfig().dropout, LMHeadConfig().tie_weights) == (0.0, False)
    with pytest.raises(ConfigError, match="dropout"):
        registry.heads.config_from({"name": "lm", "dropout": 1.0})


def test_lm_head_shapes() -> None:
    h = head(dropout=0.5)
    assert h(torch.randn(3, 5, 8)).shape == (3, 5, 11)
    assert h(torch.randn(4, 8)).shape == (4, 11)
    h.eval()
    x = torch.randn(2, 3, 8)
    assert torch.equal(h(x), h(x))  # no dropout in eval


def test_lm_head_tying_shares_the_embedding_parameter() -> None:
    torch.manual_seed(0)
    table = nn.Embedding(11, 8, padding_idx=0)
    h = head(tie_weights=True)
    h.tie(table.weight)
    assert h.output.weight is table.weight and h.tied
    assert isinstance(h.projection, nn.Identity)
    assert h.output.bias is not None and h.output.bias.shape == (11,)
    names = {n for n, _ in nn.ModuleList([table, h]).named_parameters()}
    assert "1.output.weight" not in names  # counted once
    x = torch.randn(2, 4, 8)
    assert torch.allclose(h(x), x @ table.weight.T + h.output.bias, atol=1e-6)
    h(x).logsumexp(-1).sum().backward()  # the loss reaches the table through the output
    assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0
    nn.ModuleList([table, h]).to(torch.float64)  # as model.to(device) does: still shared
    assert h.output.weight is table.weight and h.output.weight.dtype == torch.float64


def test_lm_head_tying_projects_when_the_sizes_differ() -> None:
    table = nn.Embedding(11, 6)
    h = head(input_dim=8)
    h.tie(table.weight)
    assert isinstance(h.projection, nn.Linear)
    assert h.projection.weight.shape == (6, 8) and h.projection.bias is None
    assert h.output.weight is table.weight
    out = h(torch.randn(2, 3, 8))
    assert out.shape == (2, 3, 11)
    out.sum().backward()
    assert table.weight.grad is not None and h.projection.weight.grad is not None


def test_lm_head_tying_errors() -> None:
    with pytest.raises(ConfigError, match="11 tokens"):
        head().tie(nn.Embedding(12, 8).weight)
    with pytest.raises(ConfigError, match="tie_weights"):
        head().tie(None)


# -- Hydra -------------------------------------------------------------------------------


def test_char_and_lm_compose_with_hydra() -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose(
            config_name="config",
            overrides=["tokenizer=char", "head=lm", "tokenizer.vocab_size=50"],
        )
    tok_cfg = registry.tokenizers.config_from(cfg.tokenizer)
    assert tok_cfg == CharTokenizerConfig(name="char", vocab_size=50)
    assert registry.heads.config_from(cfg.head) == LMHeadConfig(name="lm")
    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose(
            config_name="config",
            overrides=["tokenizer=word", "tokenizer.split=whitespace", "tokenizer.eos=true"],
        )
    word_cfg = registry.tokenizers.config_from(cfg.tokenizer)
    assert (word_cfg.split, word_cfg.eos) == ("whitespace", True)
