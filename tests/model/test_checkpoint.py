"""The typed Checkpoint: one layout written by the loop, read by predict, generate, resume."""

from __future__ import annotations

import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.model.checkpoint import CHECKPOINT_FORMAT, Checkpoint, save_atomic

WEIGHTS = {"w": torch.arange(6.0).view(2, 3)}


def test_a_checkpoint_round_trips_with_a_tasks_own_keys(tmp_path):
    saved = Checkpoint(
        model=WEIGHTS,
        config={"task": {"type": "language_model"}},
        tokenizer_dir="tok",
        epoch=3,
        extra={"tag_set": ["NOUN", "VERB"]},
    )
    back = Checkpoint.load(saved.save(tmp_path / "best.pt"))
    assert torch.equal(back.model["w"], WEIGHTS["w"])
    assert back.kind == "language_model" and back.epoch == 3 and back.format == CHECKPOINT_FORMAT
    assert back.extra == {"tag_set": ["NOUN", "VERB"]} and back.labels is None
    on_disk = torch.load(tmp_path / "best.pt", weights_only=True)
    assert "labels" not in on_disk and on_disk["tag_set"] == ["NOUN", "VERB"]  # None left out


def test_a_checkpoint_from_before_formats_loads_as_a_classifier(tmp_path):
    """seqpipe 0.1 wrote the same keys without ``format``: still read, kind classification."""
    old = {"model": WEIGHTS, "config": {"task": {"name": "sentiment"}}, "labels": ["neg", "pos"]}
    back = Checkpoint.load(save_atomic(old, tmp_path / "old.pt"))
    assert back.format == 1 and back.kind == "classification" and back.labels == ["neg", "pos"]


def test_a_checkpoint_from_a_newer_version_is_refused_naming_the_versions(tmp_path):
    newer = {"model": WEIGHTS, "format": CHECKPOINT_FORMAT + 1, "versions": {"pipeline": "9.0"}}
    path = save_atomic(newer, tmp_path / "new.pt")
    wanted = rf"seqpipe 9\.0 in checkpoint format {CHECKPOINT_FORMAT + 1}.*Upgrade"
    with pytest.raises(PipelineError, match=wanted):
        Checkpoint.load(path)


def test_a_file_without_weights_is_not_a_checkpoint(tmp_path):
    path = save_atomic({"weights": WEIGHTS}, tmp_path / "other.pt")
    with pytest.raises(PipelineError, match="not a checkpoint of this pipeline"):
        Checkpoint.load(path)


def test_a_format_2_checkpoint_loads_without_a_data_fingerprint(tmp_path):
    """Written before ``data`` was recorded: still read; its data is then not checked."""
    old = {"model": WEIGHTS, "format": 2, "labels": ["neg", "pos"], "tokenizer_dir": "tok"}
    back = Checkpoint.load(save_atomic(old, tmp_path / "old.pt"))
    assert back.format == 2 and back.data is None and back.extra == {}


def test_pickled_objects_are_refused_for_safety_not_called_truncated(tmp_path):
    """A file holding pickled objects besides tensors: the message says it is refused
    because unpickling can run code, names what it found, and what to use instead."""
    path = tmp_path / "payload.pt"
    torch.save({"model": WEIGHTS, "hook": print}, path)
    with pytest.raises(PipelineError) as error:
        Checkpoint.load(path)
    message = str(error.value)
    assert "truncated" not in message and str(path) in message
    assert "pickled Python objects or code" in message and "refused for safety" in message
    assert "print" in message and "state_dict()" in message


def test_the_served_copy_drops_the_training_state():
    full = Checkpoint(model=WEIGHTS, optimizer={"state": {}}, history=[{"epoch": 1}], resume={})
    served = full.for_serving()
    assert served.optimizer is None and served.resume is None and served.history == []
    assert served.model is full.model


def test_the_loop_writes_the_current_format(tmp_path):
    from pipeline.config.schemas import TrainerConfig
    from pipeline.tasks.language_model import LanguageModelTask
    from pipeline.training.context import local_context
    from pipeline.training.loop import fit

    trainer = TrainerConfig(
        batch_size=2, bptt=4, max_epochs=1, progress="none", monitor="val/loss", monitor_mode="min"
    )
    ctx = local_context(trainer, checkpoint_dir=tmp_path)
    ids = torch.randint(1, 7, (40,))
    model = torch.nn.Module()
    model.embed, model.out = torch.nn.Embedding(7, 4), torch.nn.Linear(4, 7)
    model.forward = lambda x, mask, state=None: (model.out(model.embed(x)), None)
    fit(LanguageModelTask.from_ids(ctx, {"train": ids, "validation": ids}), model, ctx)
    saved = Checkpoint.load(tmp_path / "last.pt")
    assert saved.format == CHECKPOINT_FORMAT and saved.resume["epoch"] == 2 and saved.finished
