"""The terminal's tables and summary lines, and the learning curves' axis (issue 16)."""

from __future__ import annotations

from torch import nn

from pipeline.reporting.model_table import parameter_table
from pipeline.reporting.plots import curves_figure
from pipeline.reporting.summary import Phases, stop_reason


class Tied(nn.Module):
    """An embedding and a head that share one weight (an LM's tied head), and a frozen part."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.encoder = nn.Linear(4, 4)
        self.encoder.output_dim = 4
        self.head = nn.Linear(4, 10)
        self.head.weight = self.embedding.weight
        self.encoder.bias.requires_grad_(False)


def test_the_model_table_counts_each_part_once_and_totals():
    model = Tied()
    lines = parameter_table(model, "cpu")
    rows = {line.split()[0]: line.split() for line in lines[3:-2]}
    assert rows["embedding"][1:] == ["Embedding", "?", "40"]
    assert rows["encoder"][1:] == ["Linear", "4", "20"]
    assert rows["head"][-1] == "10"  # its bias alone: the shared weight is the embedding's
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in unique)
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    assert lines[-1] == f"  total {total} parameters ({trainable} trainable) on cpu"
    assert sum(int(r[-1]) for r in rows.values()) == total


def test_stop_reason_says_why_training_ended():
    assert stop_reason(6, 6) == "max epochs reached (6)"
    assert stop_reason(4, 6, stopped_early=True, bad_epochs=3) == (
        "early stopping after 3 epochs without improvement"
    )
    assert stop_reason(2, 6) == "interrupted after epoch 2 of 6"


def test_the_time_breakdown_adds_up_to_the_run():
    phases = Phases()
    phases.add("train", 30.0)
    phases.add("data", 2.0)
    phases.add("train", 12.0)
    assert phases.describe(50.0) == "data 2.0s · train 42s · other 6.0s"


def test_learning_curves_tick_whole_epochs():
    history = [
        {"epoch": e, "train/loss": 1 / e, "val/loss": 1 / e, "val/accuracy": 0.5, "val/f1": 0.5}
        for e in (1, 2, 3)
    ]
    figure = curves_figure(history)
    for axis in figure.axes:
        low, high = axis.get_xlim()
        ticks = [t for t in axis.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_the_ui_link_of_a_server_run_opens_the_run():
    from pipeline.tracking.tracker import MlflowTracker

    tracker = MlflowTracker.__new__(MlflowTracker)  # no store: only where it lives
    tracker.uri, tracker.experiment_id, tracker.run_id = "http://127.0.0.1:5000/", "4", "abc"
    assert tracker.ui_command() == "http://127.0.0.1:5000/#/experiments/4/runs/abc"
    tracker.uri = "sqlite:////somewhere/else.db"
    assert tracker.ui_command() == "mlflow ui --backend-store-uri sqlite:////somewhere/else.db"
