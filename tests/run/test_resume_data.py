"""``trainer.resume`` checks the data against the fingerprint the checkpoint recorded, and
takes the tokenizer the run saved instead of fitting another (in process, toy data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.data import tokenize
from pipeline.data.fingerprint import DataChanged
from pipeline.errors import DataError
from pipeline.model.checkpoint import Checkpoint
from pipeline.run.runner import run
from tests.run.test_runner import composed, in_tmp, toy_reviews  # noqa: F401 (in_tmp: a fixture)

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its tmp_path


def keeping_mtime(path: Path, write) -> None:
    """Rewrite ``path`` and give it its old times back, as ``cp -p`` or ``rsync -a`` do."""
    before = os.stat(path)
    write()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def classifier(train: Path, *extra: str):
    return composed("data=files", f"data.train={train}", "optimizer.lr=0.01", *extra)


def trained_one_epoch(folder: Path) -> tuple[Path, Path]:
    """A finished one-epoch run on 200 toy rows: its train file and its last.pt."""
    train = toy_reviews(folder / "train.csv", rows=200)
    result = run(classifier(train, "trainer.max_epochs=1"))
    return train, result.best_checkpoint.with_name("last.pt")


def resume(train: Path, last: Path):
    """Train the run of ``last`` one epoch longer (a finished run may be extended)."""
    return run(classifier(train, "trainer.max_epochs=2", f"trainer.resume={last}"))


def test_the_checkpoint_records_the_data_it_was_trained_on(tmp_path):
    _, last = trained_one_epoch(tmp_path)
    data = Checkpoint.load(last).data
    assert data["labels"] == ["neg", "pos"]
    assert {k: v["rows"] for k, v in data["splits"].items()} == {
        "train": 160,
        "validation": 20,
        "test": 20,
    }
    assert data["tokenizer"]["vocab_size"] > 0 and len(data["tokenizer"]["fingerprint"]) == 64


def test_resume_on_a_file_with_four_times_the_rows_is_refused(tmp_path):
    train, last = trained_one_epoch(tmp_path)
    before = last.read_bytes()
    keeping_mtime(train, lambda: toy_reviews(train, rows=800))
    with pytest.raises(DataChanged) as refused:
        resume(train, last)
    message = str(refused.value)
    assert "train: 160 rows -> 640 rows" in message and str(train) in message
    assert "Restore the data" in message and "start a new run" in message
    assert last.read_bytes() == before  # nothing the run computed is touched


def test_a_refused_resume_leaves_the_mlflow_run_as_it_was(tmp_path):
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracked = ("tracking.name=mlflow", f"tracking.uri={store}", "tracking.log_model=false")
    train = toy_reviews(tmp_path / "train.csv", rows=200)
    first = run(classifier(train, "trainer.max_epochs=1", *tracked))
    keeping_mtime(train, lambda: toy_reviews(train, rows=800))
    last = first.best_checkpoint.with_name("last.pt")
    with pytest.raises(DataChanged):
        run(classifier(train, "trainer.max_epochs=2", f"trainer.resume={last}", *tracked))
    after = MlflowClient(store).get_run(first.run_id)
    assert after.info.status == "FINISHED" and "error" not in after.data.tags


def test_resume_on_another_label_set_is_refused_not_a_traceback(tmp_path):
    train, last = trained_one_epoch(tmp_path)
    lines = train.read_text().splitlines()
    relabelled = [lines[0]] + [
        line.rsplit(",", 1)[0] + ",maybe" if i % 3 == 0 else line
        for i, line in enumerate(lines[1:])
    ]
    train.write_text("\n".join(relabelled) + "\n")
    with pytest.raises(DataError, match=r"labels: \[neg, pos\] -> \[maybe, neg, pos\]"):
        resume(train, last)


def test_resume_restores_the_saved_tokenizer_instead_of_fitting(tmp_path, monkeypatch, capsys):
    train, last = trained_one_epoch(tmp_path)
    saved = Checkpoint.load(last)

    def no_fitting(*args, **kwargs):
        raise AssertionError("a resumed run fitted a tokenizer")

    monkeypatch.setattr(tokenize, "fit_tokenizer", no_fitting)
    capsys.readouterr()
    result = resume(train, last)
    assert f"tokenizer: restored from {saved.tokenizer_dir}" in capsys.readouterr().out
    again = Checkpoint.load(result.best_checkpoint.with_name("last.pt"))
    assert again.epoch == 2 and again.data == saved.data


def test_resume_refuses_a_tokenizer_folder_changed_since(tmp_path):
    train, last = trained_one_epoch(tmp_path)
    folder = Path(Checkpoint.load(last).tokenizer_dir)
    other = toy_reviews(tmp_path / "other.csv", rows=50)
    texts = [line.rsplit(",", 1)[0] + " extra words" for line in other.read_text().splitlines()]
    tokenize.fit_tokenizer(composed().tokenizer, texts[1:]).save(folder)
    with pytest.raises(DataError, match="not the one the run was trained with"):
        resume(train, last)


def test_a_language_model_resumed_on_an_edited_corpus_is_refused(tmp_path):
    corpus = tmp_path / "timemachine" / "timemachine.txt"
    corpus.parent.mkdir()
    corpus.write_text("the time traveller spoke to us\n" * 200)
    lm = ["task=lm", f"data.dir={tmp_path}", "trainer.bptt=10"]
    result = run(composed(*lm, "trainer.max_epochs=1", "task.sample_tokens=0"))
    last = result.best_checkpoint.with_name("last.pt")
    keeping_mtime(corpus, lambda: corpus.write_text("the time traveller spoke to me\n" * 200))
    with pytest.raises(DataChanged, match="same 180 rows, other content"):
        run(composed(*lm, "trainer.max_epochs=2", "task.sample_tokens=0", f"trainer.resume={last}"))
