"""Third-party components in this process: a carried state of any shape survives SIGINT and
resume, runs tag the distribution (and version) of every component they used, and the
``task=lm`` refusal lists every causal encoder, a plugin's included."""

from __future__ import annotations

from collections import namedtuple
from importlib.metadata import version
from typing import Any

import pytest
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from pipeline import registry
from pipeline.config.schemas import TrainerConfig
from pipeline.contracts import EncoderOutput
from pipeline.errors import ConfigError
from pipeline.model.assembly import build_language_model
from pipeline.model.checkpoint import Checkpoint
from pipeline.registry import providing
from pipeline.run.runner import run
from pipeline.tasks.language_model import LanguageModelTask
from pipeline.training.context import local_context
from pipeline.training.interrupts import ResumePoint, StopRequest, TrainingInterrupted
from pipeline.training.loop import _Loop, fit
from plugins.encoders.configs import RNNConfig
from plugins.encoders.rnn import GRUEncoder
from tests.plugin_packages import make_distribution
from tests.run.test_run_identity import stored, tracked
from tests.run.test_runner import in_tmp  # noqa: F401 (a fixture)

Pair = namedtuple("Pair", "rnn windows")


@pytest.fixture()
def scratch_registries(monkeypatch) -> None:
    """What a test registers is gone after it (registries and Hydra's ConfigStore)."""
    repo = ConfigStore.instance().repo
    for reg in registry.ALL.values():
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
        monkeypatch.setattr(reg, "_unavailable", dict(reg._unavailable))
        monkeypatch.setitem(repo, reg.group, dict(repo.get(reg.group, {})))


class NestedStateGRU(GRUEncoder):
    """The built-in GRU, its state wrapped in a dict, a namedtuple, a list and a None; it
    counts the windows it has carried the state through (a resume must go on counting)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor, state: Any = None) -> EncoderOutput:
        inner = windows = None
        if state is not None:
            assert isinstance(state, dict) and isinstance(state["pair"], Pair), state
            assert state["none"] is None and state["list"][0].device == x.device
            inner, windows = state["pair"]
        out = super().forward(x, mask, inner)
        windows = torch.ones((), device=x.device) if windows is None else windows + 1
        out.state = {"pair": Pair(out.state, windows), "none": None, "list": [windows]}
        return out


def lm_task(folder) -> tuple[LanguageModelTask, Any]:
    trainer = TrainerConfig(max_epochs=1, batch_size=4, bptt=5, progress="none", monitor="val/loss")
    ctx = local_context(trainer, checkpoint_dir=folder)
    ids = torch.randint(1, 20, (99,), generator=torch.Generator().manual_seed(0))
    task = LanguageModelTask.from_ids(ctx, {"train": ids, "validation": ids[:40]})
    cfg = OmegaConf.create(
        {
            "embedding": {"name": "learned", "dim": 8},
            "encoder": {"name": "test_nested_state_gru", "hidden_size": 8},
            "pooler": {"name": "last"},
            "head": {"name": "lm"},
        }
    )
    return task, cfg


def test_a_nested_carried_state_survives_sigint_and_resume(
    tmp_path, monkeypatch, scratch_registries
):
    with providing("seqpipe-nested-state"):
        registry.encoders.register("test_nested_state_gru", config=RNNConfig)(NestedStateGRU)
    task, cfg = lm_task(tmp_path)
    torch.manual_seed(0)
    loop = _Loop(task, build_language_model(cfg, 20, 0), task.ctx, [])
    with StopRequest() as loop.stop:
        loop.stop.signal_name = "SIGINT"  # as if sent during the first step
        with pytest.raises(TrainingInterrupted):
            loop._train_epoch(1, ResumePoint())
    saved = Checkpoint.load(tmp_path / "last.pt")  # weights_only: plain data only
    assert saved.resume["step"] == 1
    task.ctx.resumed = saved
    torch.manual_seed(0)
    model = build_language_model(cfg, 20, 0)
    seen = []
    real_forward = NestedStateGRU.forward

    def forward(self, x, mask, state=None):
        seen.append(state)
        return real_forward(self, x, mask, state)

    monkeypatch.setattr(NestedStateGRU, "forward", forward)
    book = fit(task, model, task.ctx)
    assert [entry["epoch"] for entry in book.history] == [1]  # the epoch went on to its end
    resumed = seen[0]  # the first window after the resume gets the saved state back
    assert isinstance(resumed["pair"], Pair) and resumed["none"] is None
    assert float(resumed["pair"].windows) == 1.0  # one window was carried before SIGINT


class CausalGRU(GRUEncoder):
    """A plugin's encoder that is causal by its class (``causal = True``)."""

    causal = True


def test_runs_tag_the_distribution_and_version_of_every_component(
    in_tmp,  # noqa: F811
    mlflow_store,
    monkeypatch,
    scratch_registries,
):
    site = in_tmp / "site"
    site.mkdir()
    make_distribution(site, "seqpipe-toy-gru", "toy_gru", "", entry_point=False, version="0.7")
    monkeypatch.syspath_prepend(str(site))  # installed: its version is found
    with providing("seqpipe-toy-gru"):
        registry.encoders.register("test_toy_gru", config=RNNConfig)(CausalGRU)
    done = run(tracked(in_tmp, mlflow_store, "encoder=test_toy_gru", "tracking.log_model=false"))
    tags = stored(mlflow_store, done.run_id)[1].data.tags
    ours = f"seqpipe {version('seqpipe')}"
    assert tags["plugin.encoder"] == "seqpipe-toy-gru 0.7"
    for group in ("tokenizer", "embedding", "pooler", "head", "task"):
        assert tags[f"plugin.{group}"] == ours, group


@pytest.mark.parametrize(
    "encoder, says",
    [
        ({"name": "cnn"}, ""),
        (
            {"name": "lstm", "hidden_size": 8, "bidirectional": True},
            "Set encoder.bidirectional=false",
        ),
    ],
)
def test_the_lm_refusal_lists_every_causal_encoder(encoder, says, scratch_registries):
    with providing("seqpipe-causal"):
        registry.encoders.register("test_causal_gru", config=RNNConfig)(CausalGRU)
    cfg = OmegaConf.create(
        {
            "embedding": {"name": "learned", "dim": 8},
            "encoder": encoder,
            "pooler": {"name": "last"},
            "head": {"name": "lm"},
        }
    )
    with pytest.raises(ConfigError) as refused:
        build_language_model(cfg, 20, 0)
    message = str(refused.value)
    assert f"encoder={encoder['name']} is not causal" in message
    listed = message.split("Causal encoders: ")[1]
    assert "encoder=test_causal_gru" in listed  # a third party's, causal by its class
    assert "with encoder.bidirectional=false" in listed and "encoder=gru" in listed
    assert "encoder=cnn" not in listed and "encoder=transformer" not in listed
    assert says in message
