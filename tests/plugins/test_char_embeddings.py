"""``embedding=char_cnn`` and ``embedding=word_char``: character-aware word embeddings.
Each passes the kit; a word's vector depends on its own characters only (not on the other
words, nor on how far the batch pads its characters); an unknown word is told apart by its
spelling; gradients reach the character encoder; a state dict rebuilds the same model; the
configs compose with Hydra."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_module

from pipeline import registry
from pipeline.errors import ConfigError
from pipeline.testing import check_embedding
from plugins.embeddings.characters import CharCNNEmbedding, WordCharEmbedding
from plugins.embeddings.configs import CharCNNEmbeddingConfig, WordCharEmbeddingConfig

PAD, UNK, NUM_CHARS = 0, 1, 30

#: (class, config) of each variant, small.
VARIANTS = {
    "char_cnn": (CharCNNEmbedding, CharCNNEmbeddingConfig(name="char_cnn", char_filters=8)),
    "word_char cnn": (
        WordCharEmbedding,
        WordCharEmbeddingConfig(name="word_char", dim=6, char_filters=5, token_dropout=0.3),
    ),
    "word_char lstm": (
        WordCharEmbedding,
        WordCharEmbeddingConfig(name="word_char", dim=6, char_encoder="lstm", char_hidden=4),
    ),
}


def build(variant: str, seed: int = 0, vocab_size: int = 10):
    torch.manual_seed(seed)
    cls, config = VARIANTS[variant]
    return cls(config, vocab_size, PAD, num_chars=NUM_CHARS).eval()


def spell(words: list[list[str]], width: int) -> torch.Tensor:
    """Sentences of words -> chars [B, T, width]: a=2, b=3, ...; 0 after each word."""
    chars = torch.zeros(len(words), max(map(len, words)), width, dtype=torch.long)
    for b, sentence in enumerate(words):
        for t, word in enumerate(sentence):
            chars[b, t, : len(word)] = torch.tensor([ord(c) - ord("a") + 2 for c in word])
    return chars


def ids_of(words: list[list[str]], ids: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(words), max(map(len, words))), PAD)
    for b, row in enumerate(ids):
        out[b, : len(row)] = torch.tensor(row)
    return out


@pytest.mark.parametrize(
    "name, fields",
    [
        ("char_cnn", {}),
        ("word_char", {}),
        ("word_char", {"char_encoder": "lstm", "token_dropout": 0.2, "dropout_kind": "locked"}),
    ],
)
def test_the_defaults_pass_the_kit(name, fields):
    report = check_embedding(name, **fields)
    assert report.ok, str(report)
    assert "characters" in report.passed


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_word_depends_on_its_own_characters_only(variant):
    module = build(variant)
    words = [["dog", "runs"], ["a", "extraordinarily", "long", "sentence"]]
    ids = ids_of(words, [[3, 4], [5, 6, 7, 8]])
    with torch.no_grad():
        batch = module(ids, spell(words, 15))
        assert batch.shape == (2, 4, module.output_dim)
        for b, sentence in enumerate(words):
            for t, word in enumerate(sentence):
                alone = module(ids[b : b + 1, t : t + 1], spell([[word]], len(word)))
                torch.testing.assert_close(alone[0, 0], batch[b, t])
        # the padded words of the first row are zero vectors
        assert batch[0, 2:].abs().sum() == 0
        # more character padding (a wider chars tensor) changes nothing
        torch.testing.assert_close(module(ids, spell(words, 30)), batch)


@pytest.mark.parametrize("variant", VARIANTS)
def test_unknown_words_are_told_apart_by_their_spelling(variant):
    module = build(variant)
    words = [["zebra", "quokka"]]
    ids = ids_of(words, [[UNK, UNK]])
    with torch.no_grad():
        vectors = module(ids, spell(words, 6))
    assert not torch.allclose(vectors[0, 0], vectors[0, 1])
    assert torch.isfinite(vectors).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_the_character_encoder(variant):
    module = build(variant).train()
    words = [["the", "cat", "sat"], ["on"]]
    out = module(ids_of(words, [[2, 3, 4], [5]]), spell(words, 3))
    (out * torch.randn_like(out)).sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters() if n.startswith("encoder.")}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    # the padding character's vector stays zero: it never learns
    assert module.encoder.chars.weight.grad[PAD].abs().sum() == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_state_dict_rebuilds_the_same_embedding(variant):
    module, fresh = build(variant, seed=0), build(variant, seed=1)
    words = [["tagging", "works"]]
    ids, chars = ids_of(words, [[2, UNK]]), spell(words, 7)
    with torch.no_grad():
        assert not torch.allclose(module(ids, chars), fresh(ids, chars))
        fresh.load_state_dict(module.state_dict())
        torch.testing.assert_close(module(ids, chars), fresh(ids, chars))


def test_word_char_ties_its_word_table_and_char_cnn_has_none():
    word_char = build("word_char cnn", vocab_size=10)
    assert tuple(word_char.weight.shape) == (10, 6)
    assert word_char.output_dim == 6 + 5
    assert build("char_cnn").weight is None


def test_long_words_are_cut_to_max_word_length():
    torch.manual_seed(0)
    config = CharCNNEmbeddingConfig(name="char_cnn", char_filters=8, max_word_length=4)
    module = CharCNNEmbedding(config, 10, PAD, num_chars=NUM_CHARS).eval()
    words = [["internationalisation", "interplay"]]
    with torch.no_grad():
        vectors = module(ids_of(words, [[2, 3]]), spell(words, 20))
    torch.testing.assert_close(vectors[0, 0], vectors[0, 1])  # both read "inte"


def test_built_without_characters_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="embedding=word_char reads each word's characters"):
        WordCharEmbedding(WordCharEmbeddingConfig(name="word_char"), 10, PAD)


def compose_with(*overrides: str):
    with initialize_config_module(config_module="conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_the_configs_compose_with_hydra():
    cfg = compose_with("embedding=char_cnn", "embedding.char_filters=64")
    config = registry.embeddings.config_from(cfg.embedding)
    assert isinstance(config, CharCNNEmbeddingConfig) and config.char_filters == 64
    cfg = compose_with("embedding=word_char", "embedding.char_encoder=lstm")
    config = registry.embeddings.config_from(cfg.embedding)
    assert isinstance(config, WordCharEmbeddingConfig)
    assert config.char_encoder == "lstm" and config.max_word_length == 24


def test_a_bad_char_encoder_is_refused():
    cfg = compose_with("embedding=word_char", "embedding.char_encoder=gru")
    with pytest.raises(ConfigError, match="char_encoder"):
        registry.embeddings.config_from(cfg.embedding)
