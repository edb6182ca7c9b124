"""``embedding=pretrained`` in a whole run, in this process, on toy reviews: vectors from a
file (written here) and vectors trained with word2vec on the training texts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.inference.classifier import classifier_from_checkpoint
from pipeline.run.runner import run
from tests.run.test_runner import composed, in_tmp, toy_reviews  # noqa: F401 (a fixture)

GOOD, BAD = ["great", "fine", "superb", "lovely"], ["awful", "dull", "poor", "bad"]
FILLER = ["the", "film", "was", "and", "plot", "actors", "a", "it"]


def glove_file(path: Path) -> dict[str, list[float]]:
    """4-d vectors: the good words near +x, the bad ones near -x, the rest anywhere."""
    rng = random.Random(0)
    words = {w: [1.0, rng.random(), 0.0, 0.5] for w in GOOD}
    words |= {w: [-1.0, rng.random(), 0.0, 0.5] for w in BAD}
    words |= {w: [0.0, rng.random(), rng.random(), 0.0] for w in FILLER[:-1]}  # not "it"
    lines = [f"{w} " + " ".join(f"{v:.6f}" for v in vec) for w, vec in words.items()]
    path.write_text("\n".join(lines) + "\n")
    return words


def test_a_run_trains_from_word_vectors_and_its_model_predicts(in_tmp, capsys):  # noqa: F811
    train = toy_reviews(in_tmp / "train.csv")
    words = glove_file(in_tmp / "glove.4d.txt")
    cfg = composed(
        "data=files",
        f"data.train={train}",
        "embedding=pretrained",
        f"embedding.path={in_tmp / 'glove.4d.txt'}",
        "embedding.dim=0",  # the vectors' size
        f"embedding.cache_dir={in_tmp / 'cache'}",
        "embedding.freeze=true",
        "trainer.max_epochs=3",
        "optimizer.lr=0.01",
    )
    result = run(cfg)
    assert result.metrics["test/accuracy"] > 0.9
    out = capsys.readouterr().out
    assert "embedding: 15 of " in out and "from glove.4d.txt" in out
    classifier = classifier_from_checkpoint(result.best_checkpoint)  # dim 4, from the weights
    table = classifier.model.embedding.table.weight
    great = classifier.tokenizer.encode_batch(["great"])[0][0]
    assert table.shape[1] == 4 and torch.allclose(table[great], torch.tensor(words["great"]))
    assert list(classifier.predict(["great superb lovely fine"])["label"]) == ["pos"]


def test_a_run_trains_word2vec_vectors_first(in_tmp, capsys):  # noqa: F811
    train = toy_reviews(in_tmp / "train.csv", rows=200)
    cfg = composed(
        "data=files",
        f"data.train={train}",
        "embedding=pretrained",
        "embedding.train=word2vec",
        "embedding.epochs=2",
        f"embedding.cache_dir={in_tmp / 'cache'}",
        "trainer.max_epochs=1",
    )
    result = run(cfg)
    assert "test/accuracy" in result.metrics
    out = capsys.readouterr().out
    assert "word2vec: trained" in out and "embedding: " in out
    assert len(list((in_tmp / "cache").glob("word2vec-*.vec"))) == 1


def test_a_missing_vectors_file_stops_the_run_with_one_line(in_tmp):  # noqa: F811
    train = toy_reviews(in_tmp / "train.csv", rows=100)
    cfg = composed(
        "data=files",
        f"data.train={train}",
        "embedding=pretrained",
        f"embedding.path={in_tmp / 'glove.missing.txt'}",
        "embedding.dim=0",
    )
    with pytest.raises(ConfigError, match="glove.missing.txt.*does not exist") as raised:
        run(cfg)
    assert "\n" not in str(raised.value)


def test_a_language_model_refuses_word_vectors_for_now():
    from pipeline.model.assembly import build_language_model

    cfg = composed("task=lm", "embedding=pretrained", "embedding.path=glove.txt")
    with pytest.raises(ConfigError, match="not available with task=lm"):
        build_language_model(cfg, 10, 0)
