"""The training step waits for no device: checked on the CPU by recording, under a
``TorchDispatchMode``, every op that makes the host wait for a GPU (reading a value:
``.item()``, ``float(t)``, ``int(t)``; sizing an output by the data: ``nonzero``, boolean
indexing, ``masked_select``, ``bincount``) while real steps of each task run through the
loop. Only the progress reads may read (every ``log_every_n_steps`` steps), and the epoch's
end. On a GPU, ``tests/runtime/test_cuda.py`` checks the same with
``torch.cuda.set_sync_debug_mode("error")``."""

from __future__ import annotations

import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils._python_dispatch import TorchDispatchMode

import pipeline
from pipeline.config.schemas import TrainerConfig
from pipeline.contracts import EpochBatches
from pipeline.data.batching import EncodedSplit
from pipeline.data.streams import make_streams, windows
from pipeline.model.assembly import build_language_model, build_model
from pipeline.reporting.metrics import confusion_matrix
from pipeline.tasks.classification import ClassificationTask
from pipeline.tasks.classification_eval import evaluate
from pipeline.tasks.language_model import LanguageModelTask
from pipeline.tasks.lm_eval import evaluate_lm, loss_sum
from pipeline.training.context import local_context
from pipeline.training.interrupts import ResumePoint, StopRequest
from pipeline.training.loop import EpochRun, _Loop

aten = torch.ops.aten
REPO = Path(pipeline.__file__).resolve().parents[1]
#: Ops that make the host wait for the device: a value read, or an output sized by the data.
SYNCING = {aten._local_scalar_dense, aten.nonzero, aten.masked_select, aten.bincount}
#: Where a read is allowed during the steps: the progress display and the NaN watch (both
#: every ``log_every_n_steps``), and the CPU-only shortcut of ``clip_gradients`` (on a GPU
#: torch's ``clip_grad_norm_`` runs instead: it reads nothing), and the recurrent encoders'
#: exact carried state of a padded window (``carries_state``: read on the CPU only).
PROGRESS_READS = {("progress.py", "<lambda>"), ("guards.py", "check")}
CPU_ONLY = {
    ("step.py", "clip_gradients"),
    ("rnn.py", "padded_on_host"),
    ("rnn.py", "_state_at_last_token"),
}
LOG_EVERY = 2


@dataclass
class Sync:
    op: str
    where: tuple[str, str]  # (file, function) of the innermost frame in this repository
    line: str
    step: int | str  # the training step it happened in, or "end" (after the last step)


@dataclass
class SyncRecorder(TorchDispatchMode):
    """Records every syncing op with where (in this repository) and when it ran."""

    step: int | str = 0
    syncs: list[Sync] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in SYNCING or _boolean_index(func, args):
            frames = [f for f in traceback.extract_stack() if f.filename.startswith(str(REPO))]
            frames = [f for f in frames if "/tests/" not in f.filename] or frames
            last = frames[-1]
            where = (Path(last.filename).name, last.name)
            line = f"{Path(last.filename).relative_to(REPO)}:{last.lineno} {last.line}"
            self.syncs.append(Sync(str(func), where, line, self.step))
        return func(*args, **(kwargs or {}))

    def counting(self, batches: list[Any]) -> Any:
        """The batches, with the step each is for noted (then "end")."""
        for self.step, batch in enumerate(batches, 1):
            yield batch
        self.step = "end"

    def outside_progress_reads(self) -> list[Sync]:
        def allowed(sync: Sync) -> bool:
            if sync.step == "end" or sync.where in CPU_ONLY:
                return True
            return sync.where in PROGRESS_READS and int(sync.step) % LOG_EVERY == 0

        return [sync for sync in self.syncs if not allowed(sync)]


def _boolean_index(func: Any, args: tuple) -> bool:
    """``x[mask]`` (and ``x[mask] = v``): the output's size is the mask's count."""
    if func.overloadpacket not in (aten.index, aten.index_put, aten.index_put_):
        return False
    return any(i is not None and i.dtype == torch.bool for i in args[1])


def components(encoder: dict[str, Any], head: str) -> Any:
    return OmegaConf.create(
        {
            "embedding": {"name": "learned", "dim": 8, "dropout": 0.1},
            "encoder": {"name": "lstm", "hidden_size": 8, "dropout": 0.1, **encoder},
            "pooler": {"name": "max"},
            "head": {"name": head, "dropout": 0.1},
        }
    )


def encoded(rows: int, seed: int) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 12, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(1, 30, int(offsets[-1]))
    return EncodedSplit.from_flat(values, offsets, 0, torch.from_numpy(rng.integers(0, 3, rows)))


def classifier(tmp_path: Path) -> tuple[ClassificationTask, torch.nn.Module]:
    trainer = TrainerConfig(batch_size=8, bucket_size=2, progress="log", log_every_n_steps=2)
    ctx = local_context(trainer, checkpoint_dir=tmp_path)
    splits = {"train": encoded(40, 0), "validation": encoded(20, 1)}
    task = ClassificationTask.from_splits(ctx, splits, ["a", "b", "c"])
    cfg = components({"bidirectional": True, "num_layers": 2}, "classifier")
    return task, build_model(cfg, 30, 0, 3)


def language_model(tmp_path: Path) -> tuple[LanguageModelTask, torch.nn.Module]:
    trainer = TrainerConfig(
        batch_size=4, bptt=5, progress="log", log_every_n_steps=2, monitor="val/loss"
    )
    ctx = local_context(trainer, checkpoint_dir=tmp_path)
    ids = torch.randint(1, 20, (99,), generator=torch.Generator().manual_seed(0))
    task = LanguageModelTask.from_ids(ctx, {"train": ids, "validation": ids[:40]})
    assert not task.streams.mask.all()  # the last window has padding: the masked case runs
    cfg = components({"bidirectional": False, "num_layers": 2}, "lm")
    return task, build_language_model(cfg, 20, 0)


def train_one_epoch(task: Any, model: torch.nn.Module, around: Any, during: Any = None) -> EpochRun:
    """One epoch of real training steps through the loop; ``around`` wraps the batches,
    which are made first (the data path is not the subject here); ``during`` is a context
    entered around the epoch."""
    torch.manual_seed(0)
    loop = _Loop(task, model, task.ctx, [])
    made = task.train_batches(1, 0)
    batches = list(made.batches)
    assert len(batches) >= 4
    task.train_batches = lambda epoch, start: EpochBatches(made.steps, around(batches))
    with StopRequest() as loop.stop, during or nullcontext():
        return loop._train_epoch(1, ResumePoint())


@pytest.mark.parametrize("make", [classifier, language_model], ids=["classifier", "lm"])
def test_training_steps_read_nothing_from_the_device_but_progress(make, tmp_path, capsys):
    recorder = SyncRecorder()
    trained = train_one_epoch(*make(tmp_path), recorder.counting, during=recorder)
    assert trained.seen > 0
    stray = recorder.outside_progress_reads()
    assert not stray, "host syncs in the training step:\n" + "\n".join(
        f"  step {s.step}: {s.op} at {s.line}" for s in stray
    )
    reads = [s.step for s in recorder.syncs if s.where in PROGRESS_READS and s.step != "end"]
    assert reads and all(step % LOG_EVERY == 0 for step in reads)  # the recorder sees them
    assert "loss" in capsys.readouterr().err  # the log lines did read the loss


def test_the_recorder_sees_a_boolean_index_and_a_value_read():
    logits, mask = torch.randn(3, 4), torch.tensor([True, False, True])
    with SyncRecorder(step=1) as recorder:
        _ = logits[mask]
        _ = float(logits.sum())
        _ = torch.bincount(torch.tensor([1, 2]), minlength=4)
    assert [s.op.split(".")[1] for s in recorder.syncs] == [
        "index",
        "_local_scalar_dense",
        "bincount",
    ]


def syncs_evaluating(run: Any) -> int:
    with SyncRecorder(step="eval") as recorder:
        run()
    return len([sync for sync in recorder.syncs if sync.where not in CPU_ONLY])


def test_evaluation_reads_the_device_once_per_split_not_per_batch(tmp_path):
    """Classifier metrics and LM loss accumulate on the device: the number of host reads
    is the same for 2 batches as for 8."""
    task, model = classifier(tmp_path)
    split, cpu = task.splits["validation"], torch.device("cpu")

    def classify(batch_size: int) -> Any:
        return lambda: evaluate(model, split, batch_size=batch_size, device=cpu, num_classes=3)

    assert syncs_evaluating(classify(10)) == syncs_evaluating(classify(3))
    ids = torch.randint(1, 20, (99,), generator=torch.Generator().manual_seed(1))
    lm = build_language_model(components({"bidirectional": False, "num_layers": 1}, "lm"), 20, 0)

    def perplexity(bptt: int) -> Any:
        return lambda: evaluate_lm(lm, ids, batch_size=4, bptt=bptt, pad_id=0, device=cpu)

    assert syncs_evaluating(perplexity(25)) == syncs_evaluating(perplexity(4))


def test_the_sync_free_lm_loss_is_bit_identical_to_selecting_the_real_targets():
    """ignore_index over a window (padding is a suffix of its rows) gives exactly the sum,
    and the gradients, of cross-entropy over ``logits[mask]``: CPU numbers do not move."""
    ids = torch.randint(1, 50, (998,), generator=torch.Generator().manual_seed(2))
    padded = 0
    for window in windows(make_streams(ids, 7, 0), 13, torch.device("cpu")):
        logits = torch.randn(*window.inputs.shape, 50, generator=torch.Generator().manual_seed(3))
        ours, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        mask = window.mask
        new = loss_sum(ours, window.targets, mask)
        old = F.cross_entropy(theirs[mask], window.targets[mask], reduction="sum")
        (new * 0.37).backward(), (old * 0.37).backward()
        assert torch.equal(new, old) and torch.equal(ours.grad, theirs.grad)
        padded += int(not mask.all())
    assert padded == 1


def test_the_confusion_matrix_counts_as_bincount_did():
    rng = torch.Generator().manual_seed(4)
    target, predicted = torch.randint(0, 5, (300,), generator=rng), torch.randint(0, 5, (300,))
    expected = torch.bincount(target * 5 + predicted, minlength=25).reshape(5, 5)
    assert torch.equal(confusion_matrix(predicted, target, 5), expected)
    assert confusion_matrix(predicted[:0], target[:0], 5).sum() == 0
