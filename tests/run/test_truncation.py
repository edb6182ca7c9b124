"""``data.truncation_side``: a text longer than ``data.max_length`` keeps its first tokens
(right, the default) or its last ones (left: ``data=imdb``, whose reviews end with their
verdict), in training and in every use of the trained model."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from pipeline.inference.classifier import classifier_from_checkpoint
from pipeline.run.params import hyperparameters
from pipeline.run.runner import run
from tests.run.test_runner import composed

FILLER = ["the", "film", "was", "and", "plot", "actors", "a", "it", "so", "then"]


def verdict_last(path: Path, rows: int = 600) -> Path:
    """Reviews of 10 filler words, then the word that gives the label: only a model that
    reads the end of each text can learn them."""
    rng = random.Random(0)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = "pos" if i % 2 else "neg"
            verdict = rng.choice(["great", "superb"] if i % 2 else ["awful", "dull"])
            writer.writerow([" ".join([*rng.choices(FILLER, k=10), verdict]), label])
    return path


@pytest.fixture()
def reviews(tmp_path, monkeypatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    train = verdict_last(tmp_path / "train.csv")
    return [
        "data=files",
        f"data.train={train}",
        "data.max_length=4",
        "trainer.max_epochs=10",
        "optimizer.lr=0.01",
    ]


def test_the_left_side_keeps_each_texts_end_in_training_and_prediction(reviews, tmp_path):
    left = run(composed(*reviews, "data.truncation_side=left", "trainer.checkpoint_dir=left"))
    right = run(composed(*reviews, "trainer.checkpoint_dir=right"))
    # The verdict is each text's last word: only the left side keeps it.
    assert left.metrics["test/accuracy"] >= 0.95
    assert right.metrics["test/accuracy"] <= 0.75

    trained = classifier_from_checkpoint(left.best_checkpoint)
    assert trained.truncation_side == "left" and trained.max_length == 4
    text = "the film was so so and then the plot was superb"
    ids = trained.tokenizer.encode_batch([text])[0]
    encoded = trained.encode([text])
    assert encoded.ids[0, : int(encoded.lengths[0])].tolist() == ids[-4:]
    assert trained.predict([text, text.replace("superb", "dull")])["label"].tolist() == [
        "pos",
        "neg",
    ]
    assert classifier_from_checkpoint(right.best_checkpoint).truncation_side == "right"


def test_the_side_is_a_param_where_it_differs_from_the_preset(reviews):
    assert hyperparameters(composed(*reviews))["data.max_length"] == 4
    assert "data.truncation_side" not in hyperparameters(composed(*reviews))
    left = composed(*reviews, "data.truncation_side=left")
    assert hyperparameters(left)["data.truncation_side"] == "left"
    assert "data.truncation_side" not in hyperparameters(composed("data=imdb"))  # its preset's
    imdb_right = composed("data=imdb", "data.truncation_side=right")
    assert hyperparameters(imdb_right)["data.truncation_side"] == "right"
