"""Metrics against hand-computed values; checkpoints written atomically, read safely."""

import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.model.checkpoint import load_checkpoint, save_atomic
from pipeline.reporting.metrics import accuracy, confusion_matrix, macro_f1


def test_confusion_accuracy_and_macro_f1():
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 1, 1, 1, 2, 0])
    cm = confusion_matrix(predicted, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert accuracy(cm) == pytest.approx(4 / 6)
    # per class F1: 0: p=1/2 r=1/2 -> 0.5; 1: p=2/3 r=1 -> 0.8; 2: p=1 r=1/2 -> 2/3
    assert macro_f1(cm) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_atomic_save_round_trip_leaves_no_temporary_files(tmp_path):
    path = save_atomic({"model": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "last.pt")
    assert load_checkpoint(path)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = save_atomic({"model": {"w": torch.ones(1000)}}, tmp_path / "best.pt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(PipelineError, match="cannot be read"):
        load_checkpoint(path)
    with pytest.raises(PipelineError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoints_do_not_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(PipelineError):
        load_checkpoint(path)
