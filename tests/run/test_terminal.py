"""What a run prints, read as a person reads it (issue 16): a header, the model's parts, epoch
lines with their legend, evaluation said while it runs, and a summary that says which epoch
won, why training stopped and where the time went. In-process, on toy data, in seconds."""

from __future__ import annotations

import re
from types import SimpleNamespace

import torch

from pipeline.run.header import header_lines
from pipeline.run.runner import run
from tests.run.test_runner import composed, in_tmp, toy_reviews  # noqa: F401 (a fixture)


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_a_run_reads_at_a_glance(in_tmp, capsys):  # noqa: F811
    train = toy_reviews(in_tmp / "train.csv", rows=200)
    overrides = (
        "data=files",
        f"data.train={train}",
        "trainer.max_epochs=2",
        "trainer.progress=log",
    )
    result = run(composed(*overrides, "optimizer.lr=0.01", "seed=5"))
    out, err = capsys.readouterr()
    lines = lines_of(out)
    saved = torch.load(result.best_checkpoint, weights_only=True)

    # the header: task and data, seed and device, then the task's own line with split sizes
    title = next(i for i, line in enumerate(lines) if line.startswith("== "))
    data = next(i for i, line in enumerate(lines) if line.startswith("data: "))
    assert "task sentiment on data files" in lines[title]
    assert title < data and "seed 5 · device cpu" in out and "train " in lines[data]

    # the model's parts, each counted, adding up to every weight the checkpoint holds
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  ")}
    assert {"embedding", "encoder", "pooler", "head"} <= set(rows)
    counted = sum(
        int(rows[p][-1].replace(",", "")) for p in ("embedding", "encoder", "pooler", "head")
    )
    stored = sum(t.numel() for t in saved["model"].values())
    total = re.search(r"total ([\d,]+) parameters \(([\d,]+) trainable\)", out)
    assert int(total[1].replace(",", "")) == counted == stored

    # the "*" explained once, with the first epoch line; evaluation said while it runs
    assert out.count("(* = best val/accuracy so far, saved to best.pt)") == 1
    first_epoch = next(i for i, line in enumerate(lines) if line.startswith("epoch 1:"))
    assert lines[first_epoch + 1].startswith("  (* = best")
    history = saved["history"]
    best = max(history, key=lambda h: h["val/accuracy"])  # the first of equals, as the book
    assert "epoch 1/2 validation: evaluating" in err and "epoch 2/2 validation: evaluating" in err
    assert f"test (best.pt, epoch {best['epoch']}): evaluating" in err

    # the summary: best epoch (as the checkpoint says), why it stopped, the time per phase
    assert f"best epoch     {best['epoch']} of 2 (val/accuracy {best['val/accuracy']:.4f})" in out
    assert "stopped        max epochs reached (2)" in out
    time_line = next(line for line in lines if line.startswith("  time "))
    assert all(f"{phase} " in time_line for phase in ("data", "train", "eval", "logging"))


def test_early_stopping_is_the_reason_given(in_tmp, capsys):  # noqa: F811
    """A learning rate too small to change a prediction: no epoch beats the first."""
    train = toy_reviews(in_tmp / "train.csv", rows=120)
    cfg = composed(
        "data=files",
        f"data.train={train}",
        "trainer.max_epochs=4",
        "trainer.patience=1",
        "optimizer.lr=1e-12",
    )
    run(cfg)
    out = capsys.readouterr().out
    assert "stopped        early stopping after 1 epoch without improvement" in out
    assert "best epoch     1 of 2 " in out


def test_the_header_names_the_overrides_and_links_the_run():
    tracker = SimpleNamespace(
        run_name="lstm-h16-sst2-3f9a",
        run_id="abc123",
        ui_command=lambda: "http://127.0.0.1:5000/#/experiments/4/runs/abc123",
        describe=lambda: "http://127.0.0.1:5000",
    )
    ctx = SimpleNamespace(
        cfg=SimpleNamespace(
            task=SimpleNamespace(type="classification"), data=SimpleNamespace(name="sst2")
        ),
        task=SimpleNamespace(name="sentiment"),
        tracker=tracker,
        seed=7,
        device=torch.device("cpu"),
        out_dir="outputs/x",
        checkpoint_dir="outputs/x",
        resumed=None,
    )
    text = "\n".join(header_lines(ctx, ["data=sst2", "encoder.hidden_size=16"]))
    assert text.startswith("== lstm-h16-sst2-3f9a: task sentiment on data sst2")
    assert "overrides  data=sst2 encoder.hidden_size=16" in text
    assert "seed 7 · device cpu" in text
    assert "http://127.0.0.1:5000/#/experiments/4/runs/abc123" in text
    assert "none (the defaults)" in "\n".join(header_lines(ctx, []))
