"""Classification reports: per-class metrics from a confusion matrix, the worst validation
errors, and the PNGs (attention heatmaps only for models that expose attention), written by
real models on real SST-2 sentences."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from PIL import Image

from pipeline.data.batching import EncodedSplit
from pipeline.data.tokenize import fit_tokenizer
from pipeline.model.assembly import build_model
from pipeline.reporting.metrics import macro_f1
from pipeline.reporting.reports import (
    ERROR_COLUMNS,
    attention_weights,
    attention_window,
    classification_report,
    error_rows,
    format_report,
    predict_probabilities,
    worst_errors,
    write_classification_reports,
)

LABELS = ["negative", "positive"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# rows = true label; class "c" is never predicted
CONFUSION = torch.tensor([[3, 1, 0], [2, 4, 0], [1, 1, 0]])


def by_label(report: dict) -> dict[str, dict]:
    return {c["label"]: c for c in report["classes"]}


def test_per_class_metrics_match_hand_computed_values():
    report = classification_report(CONFUSION, ["a", "b", "c"])
    a, b, c = (by_label(report)[k] for k in "abc")
    # a: tp 3, predicted 6, support 4; b: tp 4, predicted 6, support 6
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == pytest.approx(
        (3 / 6, 3 / 4, 0.6, 4)
    )
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx(
        (4 / 6, 4 / 6, 4 / 6, 6)
    )
    # never predicted: precision 0, not NaN
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 2)
    assert report["accuracy"] == pytest.approx(7 / 12)
    macro, weighted = report["macro_avg"], report["weighted_avg"]
    assert macro["precision"] == pytest.approx((0.5 + 4 / 6) / 3)
    assert macro["recall"] == pytest.approx((0.75 + 4 / 6) / 3)
    assert macro["f1"] == pytest.approx((0.6 + 4 / 6) / 3)
    assert weighted["precision"] == pytest.approx((0.5 * 4 + 4 / 6 * 6) / 12)
    assert weighted["recall"] == pytest.approx(7 / 12)  # weighted recall is accuracy
    assert weighted["f1"] == pytest.approx((0.6 * 4 + 4 / 6 * 6) / 12)
    assert macro["support"] == weighted["support"] == 12
    values = [v for cls in report["classes"] for v in cls.values() if isinstance(v, float)]
    assert all(math.isfinite(v) for v in values)


def test_macro_average_matches_the_logged_macro_f1():
    # a 4th class absent from targets and predictions is left out of the macro average,
    # as test/f1 (macro_f1) leaves it out
    confusion = torch.zeros(4, 4, dtype=torch.long)
    confusion[:3, :3] = CONFUSION
    report = classification_report(confusion, ["a", "b", "c", "d"])
    assert report["macro_avg"]["f1"] == pytest.approx(macro_f1(confusion))
    assert report["macro_avg"]["f1"] == pytest.approx((0.6 + 4 / 6) / 3)
    assert by_label(report)["d"] == {
        "label": "d",
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def test_text_report_is_an_aligned_table():
    text = format_report(classification_report(CONFUSION, ["a", "b", "longer label"]))
    lines = [line for line in text.splitlines() if line]
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert len({len(line) for line in lines}) == 1, text  # every column right-aligned
    assert lines[1].split() == ["a", "0.5000", "0.7500", "0.6000", "4"]
    assert lines[3].split() == ["longer", "label", "0.0000", "0.0000", "0.0000", "2"]
    assert lines[4].split() == ["accuracy", "0.5833", "12"]
    assert lines[5].startswith("   macro avg") and lines[6].startswith("weighted avg")


def test_worst_errors_are_the_most_confident_wrong_predictions_first():
    probabilities = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # 0: true 0, right
            [0.2, 0.7, 0.1],  # 1: true 0, wrong with 0.7
            [0.03, 0.02, 0.95],  # 2: true 1, wrong with 0.95
            [0.1, 0.2, 0.7],  # 3: true 1, wrong with 0.7 (ties with 1: split order)
            [0.1, 0.8, 0.1],  # 4: true 1, right
            [0.5, 0.1, 0.4],  # 5: true 2, wrong with 0.5
        ]
    )
    targets = torch.tensor([0, 0, 1, 1, 1, 2])
    assert worst_errors(probabilities, targets).tolist() == [2, 1, 3, 5]
    assert worst_errors(probabilities, targets, top_n=2).tolist() == [2, 1]
    assert worst_errors(probabilities[[0, 4]], targets[[0, 4]]).tolist() == []
    texts = [f"text {i}" for i in range(6)]
    rows = error_rows(probabilities, targets, texts, ["x", "y", "z"], top_n=3)
    assert [(r.index, r.text, r.true_label, r.predicted_label) for r in rows] == [
        (2, "text 2", "y", "z"),
        (1, "text 1", "x", "y"),
        (3, "text 3", "y", "z"),
    ]
    assert [r.confidence for r in rows] == pytest.approx([0.95, 0.7, 0.7])
    assert [r.p_true for r in rows] == pytest.approx([0.02, 0.2, 0.2])


def test_attention_window_keeps_short_rows_and_centres_long_ones_on_the_peak():
    assert attention_window([0.5, 0.3, 0.2], width=40) == (0, 3)
    weights = [0.0] * 100
    weights[3] = 1.0
    assert attention_window(weights, width=40) == (0, 40)
    weights[3], weights[60] = 0.0, 1.0
    assert attention_window(weights, width=40) == (40, 80)
    weights[60], weights[98] = 0.0, 1.0
    assert attention_window(weights, width=40) == (60, 100)


# -- real models on real SST-2 sentences --------------------------------------------------


def sst2_rows(data_dir: Path, n: int) -> tuple[list[str], list[int]]:
    with open(data_dir / "sst2_glue" / "dev.tsv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = [next(reader) for _ in range(n)]
    return [r["sentence"].strip() for r in rows], [int(r["label"]) for r in rows]


@pytest.fixture(scope="module")
def sst2(data_dir):
    """A word tokenizer fitted on 60 real SST-2 sentences; 12 of them (one emptied, to
    check zero-length rows) as the validation split."""
    texts, labels = sst2_rows(data_dir, 60)
    tokenizer = fit_tokenizer({"name": "word", "vocab_size": 500, "min_freq": 1}, texts)
    texts, labels = texts[:12], labels[:12]
    texts[5] = ""
    ids = tokenizer.encode_batch(texts)
    offsets = np.cumsum([0] + [len(row) for row in ids])
    values = np.array([i for row in ids for i in row], dtype=np.int64)
    split = EncodedSplit.from_flat(values, offsets, tokenizer.pad_id, torch.tensor(labels))
    return tokenizer, split, texts


def model_for(tokenizer, *overrides: str):
    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose(
            config_name="config",
            overrides=["embedding.dim=8", "encoder.hidden_size=8", *overrides],
        )
    torch.manual_seed(0)
    return build_model(cfg, tokenizer.vocab_size, tokenizer.pad_id, len(LABELS))


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_probabilities_are_in_the_splits_row_order(sst2):
    tokenizer, split, _ = sst2
    model = model_for(tokenizer, "encoder=gru")
    model.train()
    probabilities = predict_probabilities(model, split, 2, device=torch.device("cpu"))
    assert model.training  # its mode is given back
    model.eval()
    for row in range(len(split)):
        length = int(split.lengths[row])
        ids = split.ids[row : row + 1, : max(length, 1)]
        mask = torch.arange(ids.size(1))[None] < length
        with torch.no_grad():
            alone = torch.softmax(model(ids, mask), dim=1)[0]
        torch.testing.assert_close(probabilities[row], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "overrides, source",
    [(["encoder=lstm_attention"], "encoder"), (["encoder=lstm", "pooler=attention"], "pooler")],
)
def test_attention_weights_come_from_the_encoder_or_the_pooler(sst2, overrides, source):
    tokenizer, split, _ = sst2
    model = model_for(tokenizer, *overrides).eval()
    rows = torch.tensor([0, 2, 7])
    weights = attention_weights(model, split, rows, torch.device("cpu"))
    lengths = split.lengths[rows]
    mask = torch.arange(int(lengths.max()))[None] < lengths[:, None]
    assert weights.shape == mask.shape
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert (weights[~mask] == 0).all()
    x, out = split.ids[rows, : mask.size(1)], None
    with torch.no_grad():
        out = model.encoder(model.embedding(x), mask)
        expected = out.attention if source == "encoder" else model.pooler.attend(out, mask)[1]
    torch.testing.assert_close(weights, expected)


def test_no_attention_without_an_attention_encoder_or_pooler(sst2):
    tokenizer, split, _ = sst2
    model = model_for(tokenizer, "encoder=lstm").eval()
    assert attention_weights(model, split, torch.tensor([0, 1]), torch.device("cpu")) is None


@pytest.mark.parametrize(
    "overrides, heatmap",
    [(["encoder=lstm_attention"], True), (["encoder=lstm"], False)],
    ids=["lstm_attention", "lstm"],
)
def test_reports_and_pngs_are_written(sst2, tmp_path, overrides, heatmap):
    tokenizer, split, texts = sst2
    model = model_for(tokenizer, *overrides)
    test_confusion = torch.tensor([[40, 10], [5, 45]])
    written = write_classification_reports(
        model, split, texts, test_confusion, LABELS, tokenizer, torch.device("cpu"), tmp_path
    )
    plots = {"classification_report.png", "worst_validation_errors.png"}
    plots |= {"attention.png"} if heatmap else set()
    assert {p.name for p in (tmp_path / "plots").iterdir()} == plots
    reports = {"classification_report.json", "classification_report.txt"}
    reports |= {"worst_validation_errors.csv"}
    assert {p.name for p in (tmp_path / "reports").iterdir()} == reports
    assert sorted(written) == sorted(
        [tmp_path / "plots" / n for n in plots] + [tmp_path / "reports" / n for n in reports]
    )
    for name in plots:
        assert_png(tmp_path / "plots" / name)

    report = json.loads((tmp_path / "reports" / "classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(0.85)
    assert by_label(report)["positive"]["precision"] == pytest.approx(45 / 55)
    assert "0.8500" in (tmp_path / "reports" / "classification_report.txt").read_text()

    with open(tmp_path / "reports" / "worst_validation_errors.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    probabilities = predict_probabilities(model, split, 2, device=torch.device("cpu"))
    predicted = probabilities.argmax(dim=1)
    wrong = int((predicted != split.labels).sum())
    assert 0 < wrong and len(rows) == wrong  # fewer than 20 errors: every one is listed
    assert tuple(rows[0]) == ERROR_COLUMNS
    confidence = [float(r["confidence"]) for r in rows]
    assert confidence == sorted(confidence, reverse=True)
    for r in rows:
        i = int(r["index"])
        assert r["text"] == texts[i] and r["true_label"] == LABELS[int(split.labels[i])]
        assert r["predicted_label"] == LABELS[int(predicted[i])] != r["true_label"]
        assert float(r["p_true"]) == pytest.approx(float(probabilities[i, split.labels[i]]), 1e-3)
