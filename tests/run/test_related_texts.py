"""``data.related_texts`` and ``embedding=learned embedding.init=word2vec``: the learned table
starts from word2vec vectors trained on the training texts plus the data's related texts;
a data set that names related texts suggests it (toy reviews and a toy related file written
here, in process; gensim on a few thousand words takes well under a second)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from pipeline.errors import ConfigError, DataError
from pipeline.inference.classifier import classifier_from_checkpoint
from pipeline.run.runner import run
from pipeline.tasks.related import takes_related_words, word2vec_suggestion
from plugins.embeddings.configs import LearnedEmbeddingConfig
from plugins.embeddings.learned import LearnedEmbedding
from plugins.embeddings.vectors import aligned_vectors
from tests.plugins.test_pretrained_embeddings import TOKENS, vocabulary
from tests.run.test_runner import composed, in_tmp, toy_reviews  # noqa: F401 (a fixture)
from tests.tasks.test_corpus_extra import held_out

WORDS = ["the", "film", "paris", "great", "was", "and", "a", "plot"]


def related_file(path: Path, lines: int = 300, extra: list[str] | None = None) -> Path:
    """Unlabelled toy text (one text a line), seeded."""
    rng = random.Random(1)
    texts = [" ".join(rng.choices(WORDS, k=8)) for _ in range(lines)]
    path.write_text("\n".join(texts + (extra or [])) + "\n", encoding="utf-8")
    return path


def built(
    init: str, tmp_path: Path, related: list[str] | None = None, init_scale: str = "vectors"
) -> LearnedEmbedding:
    torch.manual_seed(0)
    config = LearnedEmbeddingConfig(name="learned", dim=6, init=init, init_scale=init_scale)
    words = vocabulary(tmp_path, texts=["the film was great", "a plot and the film"])
    words.related_texts = (lambda: list(related)) if related is not None else None
    return LearnedEmbedding(config, len(TOKENS), 0, vocabulary=words)


def test_word2vec_init_copies_the_trained_vectors_into_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEQPIPE_CACHE", str(tmp_path / "cache"))
    related = related_file(tmp_path / "related.txt").read_text().splitlines()
    table = built("word2vec", tmp_path, related).table.weight.detach()
    scaled = built("word2vec", tmp_path, related, init_scale="table").table.weight.detach()
    plain = built("random", tmp_path).table.weight.detach()
    out = capsys.readouterr().out
    assert "word2vec: trained" in out and "embedding: 4 of 6 words" in out
    vec = next((tmp_path / "cache" / "vectors").glob("word2vec-*.vec"))
    aligned = aligned_vectors(str(vec), "word2vec", TOKENS, str(tmp_path / "x"))
    # "paris" is only in the related texts: the vectors are trained on them too
    assert aligned.dim == 6 and aligned.found.tolist() == [0, 0, 1, 1, 1, 1, 0]
    found = aligned.found
    assert torch.equal(table[found], aligned.vectors[found])  # rows: the trained vectors
    assert torch.equal(table[~found][1:], plain[~found][1:])  # the others: their random init
    assert not table[0].any()  # padding
    # init_scale=table: the same vectors, all scaled by one factor to the random table's std
    scale = float(plain.std()) / float(aligned.vectors[found].std())
    assert abs(scale - 1) > 0.5  # word2vec's own scale is not the table's: scaling matters
    torch.testing.assert_close(scaled[found], aligned.vectors[found] * scale)
    assert torch.equal(scaled[~found], table[~found])
    assert f"word2vec rows scaled x{scale:.2f}" in out


def test_random_init_is_todays_table_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    today = torch.nn.Embedding(len(TOKENS), 6, padding_idx=0).weight
    assert torch.equal(built("random", tmp_path).table.weight, today)
    torch.manual_seed(0)  # rebuilt from a checkpoint (no vocabulary): the plain table
    config = LearnedEmbeddingConfig(name="learned", dim=6, init="word2vec")
    assert torch.equal(LearnedEmbedding(config, len(TOKENS), 0).table.weight, today)


def word2vec_run(folder: Path, *overrides: str, extra: Callable | None = None) -> tuple:
    """A 1-epoch run on toy reviews, ``data.related_texts`` a toy file (plus ``extra``
    lines: a function of the composed config)."""
    train = toy_reviews(folder / "train.csv", rows=200)
    cfg = composed(
        "data=files",
        f"data.train={train}",
        "embedding.dim=8",
        "trainer.max_epochs=1",
        f"data.related_texts=[{folder / 'related.txt'}]",
        *overrides,
    )
    related_file(folder / "related.txt", extra=extra(cfg) if extra else None)
    return cfg, run(cfg)


def test_related_texts_suggest_word2vec_and_the_model_reloads(in_tmp, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("SEQPIPE_CACHE", str(in_tmp / "cache"))
    evaluated = lambda cfg: [held_out(cfg)["validation"][0]]  # noqa: E731 (must be dropped)
    _, result = word2vec_run(in_tmp, extra=evaluated)
    out = capsys.readouterr().out
    assert "settings suggested by data=files (data.related_texts): embedding.init=word2vec" in out
    assert "related_texts: " in out and "dropped 1 that are or hold a validation/test" in out
    assert "word2vec: trained" in out and "embedding: " in out
    assert OmegaConf.load(result.output_dir / "config.yaml").embedding.init == "word2vec"
    classifier = classifier_from_checkpoint(result.best_checkpoint)  # no vocabulary: plain
    saved = torch.load(result.best_checkpoint, weights_only=True)["model"]
    table = classifier.model.embedding.table.weight
    assert torch.equal(table, saved["embedding.table.weight"])
    assert list(classifier.predict(["great superb"])["label"])[0] in ("neg", "pos")


def test_related_words_join_the_vocabulary_from_their_vectors(in_tmp, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("SEQPIPE_CACHE", str(in_tmp / "cache"))
    _, result = word2vec_run(in_tmp)
    out = capsys.readouterr().out
    assert "vocabulary: " in out and " words of the related texts" in out
    classifier = classifier_from_checkpoint(result.best_checkpoint)
    tokens = classifier.tokenizer.vocab()
    paris = tokens.index("paris")  # only in the related texts: a word of its own, not <unk>
    assert classifier.tokenizer.encode_batch(["paris"]) == [[paris]]
    vec = next((in_tmp / "cache" / "vectors").glob("word2vec-*.vec"))
    aligned = aligned_vectors(str(vec), "word2vec", tokens, str(in_tmp / "x"))
    row = classifier.model.embedding.table.weight[paris].detach()
    # never in a training text: its row is still its vector (weight decay only shrinks it)
    assert torch.cosine_similarity(row, aligned.vectors[paris], dim=0) > 0.9999
    (in_tmp / "off").mkdir()
    _, off = word2vec_run(in_tmp / "off", "data.related_words=false")
    assert "paris" not in classifier_from_checkpoint(off.best_checkpoint).tokenizer.vocab()


def test_the_users_embedding_init_random_wins(in_tmp, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("SEQPIPE_CACHE", str(in_tmp / "cache"))
    given = {"embedding.init"}  # as Hydra reports `embedding.init=random` on the command line
    monkeypatch.setattr("pipeline.config.suggestions.command_line_keys", lambda: given)
    _, result = word2vec_run(in_tmp, "embedding.init=random")
    out = capsys.readouterr().out
    assert "embedding.init=word2vec" not in out and "word2vec:" not in out
    assert "words of the related texts" not in out  # no vectors: no related words either
    assert OmegaConf.load(result.output_dir / "config.yaml").embedding.init == "random"
    assert not (in_tmp / "cache").exists()


def test_only_the_learned_embedding_of_a_fresh_model_is_suggested_word2vec():
    data = SimpleNamespace(name="sst2", related_texts=["imdb"])
    ctx = SimpleNamespace(cfg=OmegaConf.create({"embedding": {"name": "learned"}}), init_from=None)
    tokenizer = SimpleNamespace(vocab=lambda: [])
    assert [s.value for s in word2vec_suggestion(ctx, data, tokenizer)] == ["word2vec"]
    assert word2vec_suggestion(ctx, SimpleNamespace(name="trec", related_texts=[]), tokenizer) == []
    assert word2vec_suggestion(ctx, data, object()) == []  # a tokenizer with no vocabulary
    ctx.cfg.embedding.name = "pretrained"
    assert word2vec_suggestion(ctx, data, tokenizer) == []
    ctx.cfg.embedding.name, ctx.init_from = "learned", object()  # a language model's weights
    assert word2vec_suggestion(ctx, data, tokenizer) == []


def test_related_words_only_where_the_vectors_start_the_table(monkeypatch):
    monkeypatch.setattr("pipeline.config.suggestions.command_line_keys", lambda: set())
    data = SimpleNamespace(name="trec", related_texts=["imdb"], related_words=True)
    cfg = composed("task=topic")
    ctx = SimpleNamespace(cfg=cfg, init_from=None, resumed=None)
    tokenizer = SimpleNamespace(vocab=lambda: [], extend=lambda texts: 0)
    assert takes_related_words(ctx, data, tokenizer)  # init=word2vec will be suggested
    assert not takes_related_words(
        ctx, SimpleNamespace(**{**vars(data), "related_words": False}), tokenizer
    )
    assert not takes_related_words(ctx, data, SimpleNamespace(vocab=lambda: []))  # no extend
    assert not takes_related_words(
        SimpleNamespace(**{**vars(ctx), "resumed": object()}), data, tokenizer
    )
    cfg.embedding.init = "random"
    monkeypatch.setattr("pipeline.config.suggestions.command_line_keys", lambda: {"embedding.init"})
    assert not takes_related_words(ctx, data, tokenizer)  # the user's random init: no vectors
    cfg.embedding.init = "word2vec"  # given: vectors, so their words too
    assert takes_related_words(ctx, data, tokenizer)


@pytest.mark.parametrize(
    "entry, error, says",
    [
        ("missing.txt", DataError, r"data\.related_texts: missing\.txt is no file"),
        ("imbd", ConfigError, r"data\.related_texts: unknown data config 'imbd'.*imdb"),
    ],
)
def test_a_missing_related_file_or_unknown_name_is_one_clear_line(
    in_tmp,  # noqa: F811
    monkeypatch,
    entry,
    error,
    says,
):
    monkeypatch.setenv("SEQPIPE_CACHE", str(in_tmp / "cache"))
    train = toy_reviews(in_tmp / "train.csv", rows=100)
    cfg = composed("data=files", f"data.train={train}", f"data.related_texts=[{entry}]")
    with pytest.raises(error, match=says) as raised:
        run(cfg)
    assert "\n" not in str(raised.value)


def test_a_language_model_refuses_word2vec_init():
    from pipeline.model.assembly import build_language_model

    cfg = composed("task=lm", "embedding.init=word2vec")
    with pytest.raises(ConfigError, match="embedding.init=word2vec.*not available with task=lm"):
        build_language_model(cfg, 10, 0)
