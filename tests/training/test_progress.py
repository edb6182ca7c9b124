"""Progress display: the whole run's ETA beside the epoch's, and evaluation said (issue 16)."""

from __future__ import annotations

import torch

from pipeline.training import progress
from pipeline.training.progress import Progress, duration, evaluating


def test_the_run_eta_counts_the_epochs_still_to_come(monkeypatch, capsys):
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    # started at 0; 4 steps an epoch, 2 epochs after this one, 1 s each beyond the steps
    bar = Progress(4, "epoch 1/3", "log", log_every=2, epochs_after=2, epoch_overhead=1.0)
    bar.step(8, torch.tensor(4.0))
    bar.step(8, torch.tensor(8.0))  # the log line reads the clock at 1 (throughput), then 2
    err = capsys.readouterr().err
    # 1 s a step: 2 steps + 1 s left in this epoch, then 2 x (4 steps + 1 s)
    assert err.strip().endswith("run ETA 13s"), err


def test_evaluating_is_said_in_log_mode_and_silent_without_progress(capsys):
    with evaluating("epoch 1/2 validation", "log"):
        pass
    with evaluating("test", "none"):
        pass
    assert capsys.readouterr().err == "epoch 1/2 validation: evaluating\n"


def test_durations_read_short():
    assert [duration(s) for s in (0.42, 42.4, 185, 3725)] == ["0.4s", "42s", "3m05s", "1h02m"]
