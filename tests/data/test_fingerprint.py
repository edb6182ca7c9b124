"""Data by content: a local file edited under its old modification time is read again, and
the fingerprint a checkpoint records tells what changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.data import fingerprint
from pipeline.data.corpus import load_corpus
from pipeline.data.labelled import load_data
from tests.data.test_corpus import corpus_file, small
from tests.data.test_labelled import col, files, write


def keep_mtime(path: Path, edit) -> None:
    """Run ``edit`` and give ``path`` its old times back (as cp -p, rsync -a, touch -r do)."""
    before = os.stat(path)
    edit()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns


def rows(n: int, labels: tuple[str, str]) -> list[tuple[str, str]]:
    return [(f"text number {i}", labels[i % 2]) for i in range(n)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl.gz", ".parquet.gz"])
def test_an_edited_file_with_its_old_mtime_is_read_again(tmp_path, suffix):
    train = write(tmp_path / f"train{suffix}", rows(40, ("neg", "pos")))
    cfg = files(tmp_path, train=str(train))
    first = load_data(cfg, seed=0)
    assert first.labels == ["neg", "pos"] and len(first.splits["train"]) == 32

    keep_mtime(train, lambda: write(train, rows(80, ("yes", "nah"))))
    second = load_data(cfg, seed=0)
    assert second.labels == ["nah", "yes"]
    assert {k: len(v) for k, v in second.splits.items()} == {
        "train": 64,
        "validation": 8,
        "test": 8,
    }
    assert second.splits["train"]._fingerprint != first.splits["train"]._fingerprint
    again = load_data(cfg, seed=0)  # unchanged content: the cache serves it
    assert again.splits["train"]._fingerprint == second.splits["train"]._fingerprint


@pytest.mark.parametrize("suffix", [".csv", ".parquet.gz"])
def test_an_edit_that_keeps_size_and_mtime_is_read_again(tmp_path, suffix):
    train = write(tmp_path / f"train{suffix}", rows(40, ("neg", "pos")))
    cfg = files(tmp_path, train=str(train))
    assert load_data(cfg, seed=0).labels == ["neg", "pos"]
    size = os.stat(train).st_size
    keep_mtime(train, lambda: write(train, rows(40, ("yes", "nah"))))
    if suffix == ".csv":
        assert os.stat(train).st_size == size
    assert load_data(cfg, seed=0).labels == ["nah", "yes"]


def test_an_edited_corpus_file_with_its_old_mtime_is_read_again(tmp_path):
    path = corpus_file(tmp_path, "one line\n" * 10)
    cfg = small(tmp_path, carve_by="lines")
    assert col(load_corpus(cfg, 0).splits["train"], "text") == ["one line\n"] * 9
    keep_mtime(path, lambda: path.write_text("new text\n" * 20))
    assert col(load_corpus(cfg, 0).splits["train"], "text") == ["new text\n"] * 18


def test_content_name_follows_bytes_not_times(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("same")
    name = fingerprint.content_name([a])
    keep_mtime(a, lambda: a.write_text("diff"))
    assert fingerprint.content_name([a]) != name
    a.write_text("same")
    assert fingerprint.content_name([a]) == name


def test_split_digest_is_the_rows_wherever_they_are_stored():
    import datasets

    rows_a = {"text": ["a", "b", "c"], "label": [0, 1, 0]}
    one = datasets.Dataset.from_dict(rows_a)
    shuffled = datasets.Dataset.from_dict({"text": ["c", "b", "a"], "label": [0, 1, 0]})
    same = shuffled.select([2, 1, 0])  # through an indices mapping
    assert fingerprint.split_digest(one) == fingerprint.split_digest(same)
    assert fingerprint.split_digest(one) != fingerprint.split_digest(shuffled)


def test_differences_name_rows_content_and_labels():
    def fp(train_rows: int, digest: str, labels: list[str]) -> dict:
        splits = {"train": {"rows": train_rows, "sha256": digest}}
        return {"source": "local:x.csv", "splits": splits, "labels": labels}

    saved = fp(160, "a", ["neg", "pos"])
    assert fingerprint.differences(saved, fp(160, "a", ["neg", "pos"])) == []
    assert fingerprint.differences(saved, fp(640, "b", ["neg", "pos"])) == [
        "train: 160 rows -> 640 rows"
    ]
    assert fingerprint.differences(saved, fp(160, "b", ["nah", "yes"])) == [
        "train: same 160 rows, other content",
        "labels: [neg, pos] -> [nah, yes]",
    ]
