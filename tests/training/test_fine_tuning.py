"""Fine-tuning controls (issue 19, ULMFiT): layer groups (``pipeline.model.layers``),
discriminative learning rates (``optimizer.layer_lr_decay``) and gradual unfreezing
(``trainer.unfreeze=gradual``), through the one loop, with an exact resume."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from pipeline.config.schemas import OptimizerConfig, TrainerConfig, typed
from pipeline.contracts import Encoder, EncoderOutput
from pipeline.errors import ConfigError
from pipeline.model.assembly import SequenceClassifier, build_language_model, build_model
from pipeline.model.checkpoint import Checkpoint
from pipeline.model.layers import layer_groups
from pipeline.tasks.classification import ClassificationTask
from pipeline.training.callbacks import Callback, GradualUnfreezing
from pipeline.training.context import local_context
from pipeline.training.interrupts import TrainingInterrupted
from pipeline.training.loop import fit
from pipeline.training.schedule import EpochSchedule
from pipeline.training.step import make_optimizer, parameter_groups
from tests.runtime.test_distributed import (
    SMALL,
    assert_same_curves,
    env,  # noqa: F401  (a fixture)
    metrics,
    torchrun,
)
from tests.tasks.test_third_party_task import interrupt_at
from tests.training.test_host_syncs import components, encoded

CPU = torch.device("cpu")


def classifier(encoder: dict[str, Any] | None = None) -> nn.Module:
    """embedding -> 2-layer bidirectional LSTM (or ``encoder``) -> max pooler -> classifier."""
    torch.manual_seed(0)
    spec = encoder or {"bidirectional": True, "num_layers": 2}
    cfg = components(spec, "classifier")
    if spec.get("name") == "transformer":  # it has no hidden_size
        cfg.encoder = spec
    return build_model(cfg, 30, 0, 3)


def tied_language_model(embedding_dim: int) -> nn.Module:
    """A 2-layer LSTM language model whose head's weight is the embedding's table."""
    cfg = components({"bidirectional": False, "num_layers": 2}, "lm")
    cfg.head.tie_weights = True
    cfg.embedding.dim = embedding_dim  # != hidden_size: the head projects (a parameter more)
    return build_language_model(cfg, 20, 0)


class OwnLayers(Encoder):
    """A third-party encoder that says its own layers (``layer_groups()``)."""

    def __init__(self, config: Any, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.low, self.high = nn.Linear(input_dim, 6), nn.Linear(6, 6)
        self.scale = nn.Parameter(torch.ones(6))  # left out of its groups: joins the top
        self.output_dim = 6

    def layer_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        return [("low", list(self.low.parameters())), ("high", list(self.high.parameters()))]

    def forward(self, x: Tensor, mask: Tensor, state: Any = None) -> EncoderOutput:
        return EncoderOutput(sequence=self.high(self.low(x)) * self.scale)


def own_layers_model() -> nn.Module:
    model = classifier()
    model.encoder = OwnLayers(None, 8)
    model.head = nn.Linear(6, 3)
    return SequenceClassifier(model.embedding, model.encoder, model.pooler, model.head)


MODELS = {
    "bilstm": (classifier, ["embedding", "encoder.0", "encoder.1", "head"]),
    "gru": (
        lambda: classifier({"num_layers": 3, "name": "gru"}),
        ["embedding"] + [f"encoder.{k}" for k in range(3)] + ["head"],
    ),
    "scratch_lstm": (
        lambda: classifier({"name": "scratch_lstm", "num_layers": 2, "peepholes": True}),
        ["embedding", "encoder.0", "encoder.1", "head"],
    ),
    "lstm_attention": (
        lambda: classifier({"name": "lstm_attention", "num_layers": 2, "attention_size": 4}),
        ["embedding", "encoder.0", "encoder.1", "head"],
    ),
    "transformer": (
        lambda: classifier({"name": "transformer", "d_model": 8, "nhead": 2, "num_layers": 2}),
        ["embedding", "encoder", "head"],
    ),
    "tied_lm": (lambda: tied_language_model(8), ["embedding", "encoder.0", "encoder.1", "head"]),
    "tied_lm_projected": (
        lambda: tied_language_model(6),
        ["embedding", "encoder.0", "encoder.1", "head"],
    ),
    "own_layers": (own_layers_model, ["embedding", "encoder.low", "encoder.high", "head"]),
    "plain_module": (lambda: nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)), ["model"]),
}


@pytest.mark.parametrize("kind", MODELS)
def test_every_parameter_is_in_exactly_one_layer_group_bottom_to_top(kind):
    make, names = MODELS[kind]
    model = make()
    groups = layer_groups(model)
    assert [name for name, _ in groups] == names
    grouped = [id(p) for _, params in groups for p in params]
    assert len(grouped) == len(set(grouped))  # none twice (a tied weight included)
    assert set(grouped) == {id(p) for p in model.parameters()}  # none left out
    found = dict(groups)
    if hasattr(model, "embedding"):
        table = [id(p) for p in model.embedding.parameters()]
        assert [id(p) for p in found["embedding"]] == table
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    if isinstance(layers, nn.ModuleList):
        for depth, layer in enumerate(layers):  # both directions of a layer: one group
            assert {id(p) for p in layer.parameters()} <= {id(p) for p in found[f"encoder.{depth}"]}
    if kind == "lstm_attention":  # the attention sits on the top layer: its group
        assert {id(p) for p in model.encoder.attention.parameters()} <= {
            id(p) for p in found["encoder.1"]
        }


def test_a_tied_lm_head_weight_is_the_embedding_groups():
    model = tied_language_model(6)
    groups = dict(layer_groups(model))
    assert model.head.output.weight is model.embedding.weight
    assert any(p is model.head.output.weight for p in groups["embedding"])
    assert not any(p is model.head.output.weight for p in groups["head"])
    assert any(p is model.head.projection.weight for p in groups["head"])


SCHEDULES = [
    dict(schedule="epoch"),
    dict(schedule="epoch", decay=0.5, decay_after=1),
    dict(schedule="onecycle"),
    dict(schedule="cosine", warmup_steps=3),
    dict(schedule="linear_warmup", warmup_steps=3),
    dict(schedule="slanted_triangular"),
]


def expected_factors(model: nn.Module, decay: float) -> dict[int, float]:
    """Each parameter's lr over the top group's: decay ** -(groups above its own)."""
    groups = layer_groups(model)
    top = len(groups) - 1
    return {id(p): decay ** (depth - top) for depth, (_, ps) in enumerate(groups) for p in ps}


def lr_of(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


@pytest.mark.parametrize(
    "fields, fused",
    [(fields, None) for fields in SCHEDULES] + [(dict(schedule="onecycle"), False)],
    ids=str,
)
def test_each_parameter_has_its_layer_lr_before_and_after_scheduler_steps(fields, fused):
    """Fused AdamW (the CPU's default) and foreach; torch's schedulers scale each group's
    own initial lr (one-cycle is given one peak per group), the epoch schedule its factor."""
    model, decay, lr = classifier(), 2.6, 0.01
    config = OptimizerConfig(lr=lr, layer_lr_decay=decay, fused=fused, weight_decay=0.1, **fields)
    optimizer = make_optimizer(parameter_groups(model, config), config, CPU)
    factors = expected_factors(model, decay)
    assert lr_of(optimizer) == pytest.approx({k: lr * f for k, f in factors.items()})
    schedule = EpochSchedule(optimizer, config, lambda: 12)
    for epoch in (1, 2, 3):
        top = schedule.start_epoch(epoch)
        for _ in range(4):
            now = lr_of(optimizer)
            assert now == pytest.approx({k: top * f for k, f in factors.items()}, rel=1e-9)
            for p in model.parameters():
                p.grad = torch.ones_like(p)
            optimizer.step()
            schedule.step()
            top = optimizer.param_groups[-1]["lr"]
    assert top != lr or fields == dict(schedule="epoch")  # the schedule did move the lr


class Watch(Callback):
    """What each epoch trained: the parameters (by layer group) that changed in it, and
    which had a gradient at its last step."""

    def __init__(self, model: nn.Module) -> None:
        self.groups = layer_groups(model)
        self.changed: dict[int, set[str]] = {}
        self.with_grad: dict[int, set[str]] = {}
        self.before: list[Tensor] = []

    def on_epoch_start(self, epoch: int, model: Any) -> None:
        self.before = [p.detach().clone() for _, ps in self.groups for p in ps]

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], model: Any) -> None:
        params = [(name, p) for name, ps in self.groups for p in ps]
        moved = {name: [] for name, _ in self.groups}
        for (name, p), old in zip(params, self.before, strict=True):
            moved[name].append(not torch.equal(p.detach(), old))
        assert all(all(m) or not any(m) for m in moved.values())  # a group moves as one
        self.changed[epoch] = {name for name, m in moved.items() if all(m)}
        self.with_grad[epoch] = {name for name, p in params if p.grad is not None}


def gradual_run(folder, epochs: int, resumed: Checkpoint | None = None, **fields) -> Watch:
    """``fit`` in this process: the bi-LSTM classifier, trainer.unfreeze=gradual, AdamW
    with weight decay and layer_lr_decay, a slanted triangular schedule."""
    trainer = TrainerConfig(
        max_epochs=epochs,
        batch_size=8,
        progress="none",
        device="cpu",
        patience=0,
        unfreeze="gradual",
        **fields,
    )
    optimizer = OptimizerConfig(
        lr=0.01, weight_decay=0.1, layer_lr_decay=2.6, schedule="slanted_triangular"
    )
    ctx = local_context(trainer, optimizer, checkpoint_dir=folder)
    ctx.resumed = resumed
    splits = {"train": encoded(40, 0), "validation": encoded(16, 1), "test": encoded(16, 1)}
    model = classifier()
    watch = Watch(model)
    fit(ClassificationTask.from_splits(ctx, splits, ["a", "b", "c"]), model, ctx, [watch])
    return watch


def test_gradual_unfreezing_trains_one_more_group_each_epoch(tmp_path, capsys):
    """Epoch e trains the top e groups; the others do not move by a bit (weight decay
    included) and get no gradient. The run says the layers' lrs once, and what trains."""
    watch = gradual_run(tmp_path, epochs=4)
    names = ["embedding", "encoder.0", "encoder.1", "head"]
    for epoch in range(1, 5):
        assert watch.changed[epoch] == set(names[-epoch:]), epoch
        assert watch.with_grad[epoch] == set(names[-epoch:]), epoch
    out = capsys.readouterr().out
    lrs = ", ".join(f"{name} {0.01 / 2.6 ** (3 - k):.3g}" for k, name in enumerate(names))
    assert out.count(f"layer learning rates: {lrs}\n") == 1
    assert "epoch 1: training head; frozen: embedding, encoder.0, encoder.1\n" in out
    assert "epoch 4: training embedding, encoder.0, encoder.1, head; frozen: none\n" in out


def test_a_weight_its_component_froze_stays_frozen_when_its_group_unfreezes():
    """``embedding=pretrained embedding.freeze=true``: unfreezing gives back each weight's
    own ``requires_grad``, not True."""
    model = classifier()
    model.embedding.requires_grad_(False)  # as a frozen pretrained table is
    unfreezing = GradualUnfreezing(model, speaks=False)
    unfreezing.on_epoch_start(1, model)
    assert [p.requires_grad for p in model.head.parameters()] == [True, True]
    assert not any(p.requires_grad for p in model.encoder.parameters())
    unfreezing.on_epoch_start(4, model)
    assert all(p.requires_grad for p in model.encoder.parameters())
    assert not any(p.requires_grad for p in model.embedding.parameters())


def test_a_run_resumed_in_epoch_3_trains_exactly_epoch_3s_groups(tmp_path, monkeypatch):
    """Interrupted (a real SIGINT) at step 2 of epoch 3, the resumed run trains the rest of
    epoch 3 with its groups (not the first epoch's, nor all), and ends with the weights
    of the run that was never stopped, bit for bit."""
    straight = gradual_run(tmp_path / "straight", epochs=4)
    with monkeypatch.context() as patched:
        interrupt_at(patched, ClassificationTask, epoch=3, step=2)
        with pytest.raises(TrainingInterrupted):
            gradual_run(tmp_path / "stopped", epochs=4)
    last = Checkpoint.load(tmp_path / "stopped" / "last.pt")
    assert (last.resume["epoch"], last.resume["step"]) == (3, 2)
    assert len(last.optimizer["param_groups"]) == 4  # one per layer group
    resumed = gradual_run(tmp_path / "stopped", epochs=4, resumed=last)
    assert sorted(resumed.changed) == [3, 4]
    assert resumed.with_grad[3] == {"encoder.0", "encoder.1", "head"}
    assert resumed.changed[3] <= {"encoder.0", "encoder.1", "head"}
    ends = [Checkpoint.load(tmp_path / run / "last.pt").model for run in ("straight", "stopped")]
    assert ends[0].keys() == ends[1].keys()
    assert all(torch.equal(ends[0][k], ends[1][k]) for k in ends[0])
    assert straight.changed[4] == resumed.changed[4]


def test_unknown_unfreeze_and_a_decay_under_1_are_config_errors():
    with pytest.raises(ConfigError, match="trainer.unfreeze"):
        typed(TrainerConfig, {"unfreeze": "all"}, "trainer")
    with pytest.raises(ConfigError, match="optimizer.layer_lr_decay"):
        typed(OptimizerConfig, {"layer_lr_decay": 0.38}, "optimizer")


def test_gradual_unfreezing_under_torchrun_matches_one_process(tmp_path, env):  # noqa: F811
    """DistributedDataParallel expects every parameter's gradient unless told that some
    have none (frozen layers): two CPU processes train like one, epoch by epoch."""
    args = [a for a in SMALL if not a.startswith("data.max_train_samples=")]
    args += ["data.max_train_samples=256", "encoder.num_layers=2", "trainer.unfreeze=gradual"]
    args += ["optimizer.layer_lr_decay=2.6"]  # 2 epochs: frozen layers in both
    curves = {}
    for name, command in (
        ("one", [sys.executable, "-m", "pipeline", *args]),
        ("two", torchrun(*args)),
    ):
        cwd = tmp_path / name
        cwd.mkdir()
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert "epoch 2: training encoder.1, head; frozen: embedding, encoder.0" in done.stdout
        curves[name] = metrics(cwd)[1]
    assert_same_curves(curves["two"], curves["one"])
