"""A tagging run stopped by a real SIGINT mid-epoch resumes exactly: the one loop and the one
run serve the third task with nothing of their own (issue 18)."""

from __future__ import annotations

import pytest

from pipeline.model.checkpoint import Checkpoint
from pipeline.run.runner import run
from pipeline.tasks.tagging import TaggingTask
from pipeline.training.interrupts import TrainingInterrupted
from tests.run.test_runner import composed, in_tmp  # noqa: F401 (a fixture)
from tests.tasks.test_tagging import toy_sentences
from tests.tasks.test_third_party_task import history, interrupt_at


def test_an_interrupted_tagging_run_resumes_exactly(in_tmp, monkeypatch):  # noqa: F811
    files = [
        toy_sentences(in_tmp / f"{n}.txt", rows, seed)
        for n, rows, seed in (("train", 80, 0), ("validation", 16, 1), ("test", 16, 2))
    ]
    args = [
        "task=tagging",
        "data=files",
        f"data.train={files[0]}",
        f"data.validation={files[1]}",
        f"data.test={files[2]}",
        "trainer.max_epochs=2",
        "trainer.batch_size=8",
        "trainer.patience=0",
        "embedding.dropout=0.3",  # dropout and word dropout: their draws resume too
    ]
    straight = in_tmp / "straight"
    straight.mkdir()
    monkeypatch.chdir(straight)
    expected = run(composed(*args))

    monkeypatch.chdir(in_tmp)
    with monkeypatch.context() as patched:
        interrupt_at(patched, TaggingTask, epoch=2, step=3)
        with pytest.raises(TrainingInterrupted):
            run(composed(*args))
    last = Checkpoint.load(in_tmp / "outputs" / "manual" / "last.pt")
    assert (last.resume["epoch"], last.resume["step"]) == (2, 3)
    resumed = run(composed(*args, "trainer.resume=auto"))

    assert resumed.metrics == expected.metrics
    assert history(resumed) == history(expected)
