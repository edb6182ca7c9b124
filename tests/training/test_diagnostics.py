"""``trainer.diagnostics``: gate saturation from the encoder's trace, gradient norms per part,
the time-step gradient plot; and training is exactly what it is without them."""

from __future__ import annotations

import json

import torch
from torch import Tensor, nn

from pipeline.config.schemas import OptimizerConfig, TrainerConfig
from pipeline.contracts import Encoder, EncoderOutput, RecurrentTrace
from pipeline.masking import at_last_token, lengths_of
from pipeline.model.assembly import SequenceClassifier
from pipeline.tasks.classification import ClassificationTask
from pipeline.training.context import local_context
from pipeline.training.diagnostics import Diagnostics, part_of, saturation
from pipeline.training.loop import fit
from tests.training.test_nonfinite import split


class Cell(nn.Module):
    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(input_dim + hidden, hidden)
        self.candidate = nn.Linear(input_dim, hidden)


class GatedToy(Encoder):
    """h_t = f_t h_{t-1} + (1 - f_t) tanh(W x_t), one layer: a traceable test encoder."""

    traceable = True

    def __init__(self, input_dim: int, hidden: int = 6) -> None:
        super().__init__(None, input_dim)
        self.layers = nn.ModuleList([Cell(input_dim, hidden)])
        self.output_dim = hidden

    def steps(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        cell, real = self.layers[0], mask.unsqueeze(-1).to(x.dtype)
        h, gates, states = x.new_zeros(x.size(0), self.output_dim), [], []
        for t in range(x.size(1)):
            f = torch.sigmoid(cell.gate(torch.cat([x[:, t], h], -1)))
            h_new = f * h + (1 - f) * torch.tanh(cell.candidate(x[:, t]))
            h = real[:, t] * h_new + (1 - real[:, t]) * h
            gates.append(f * real[:, t])
            states.append(h * real[:, t])
        return torch.stack(gates, 1), torch.stack(states, 1)

    def forward(self, x: Tensor, mask: Tensor, state=None) -> EncoderOutput:
        return EncoderOutput(sequence=self.steps(x, mask)[1])

    def trace(self, x: Tensor, mask: Tensor) -> list[RecurrentTrace]:
        gates, states = self.steps(x, mask)
        return [RecurrentTrace(0, 0, {"forget": gates, "hidden": states}, ("forget",))]


class Untraceable(GatedToy):
    traceable = False


class Last(nn.Module):
    def forward(self, output: EncoderOutput, mask: Tensor) -> Tensor:
        return at_last_token(output.sequence, lengths_of(mask))


class Recorder:
    """A tracker that keeps what it is given."""

    def __init__(self) -> None:
        self.metrics: dict[int, dict[str, float]] = {}
        self.artifacts: list[tuple[str, str | None]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.setdefault(step, {}).update(metrics)

    def log_artifact(self, path, artifact_path=None) -> None:
        self.artifacts.append((str(path), artifact_path))


def toy_model(encoder: type[Encoder] = GatedToy) -> SequenceClassifier:
    torch.manual_seed(0)
    embedding = nn.Sequential(nn.Embedding(50, 8, padding_idx=0), nn.Dropout(0.3))
    head = nn.Sequential(nn.Dropout(0.3), nn.Linear(6, 2))
    return SequenceClassifier(embedding, encoder(8), Last(), head)


def train(tmp_path, diagnostics: bool, encoder: type[Encoder] = GatedToy):
    """Two epochs of ``fit`` (dropout on, so the RNG matters); the model, the recorder."""
    trainer = TrainerConfig(max_epochs=2, batch_size=10, progress="none", device="cpu")
    ctx = local_context(trainer, OptimizerConfig(lr=0.05), checkpoint_dir=tmp_path, seed=1)
    ctx.tracker = recorder = Recorder()
    splits = {"train": split(40, 0), "validation": split(12, 1)}
    task = ClassificationTask.from_splits(ctx, splits, ["a", "b"])
    model = toy_model(encoder)
    fit(task, model, ctx, callbacks=[Diagnostics(task, ctx)] if diagnostics else [])
    return model, recorder


def test_saturation_counts_real_positions_exactly():
    gates = torch.tensor([[[0.05, 0.5], [0.95, 0.99]], [[0.2, 0.91], [0.01, 0.01]]])
    mask = torch.tensor([[True, True], [True, False]])  # the last step of row 1 is padding
    traces = [
        RecurrentTrace(0, 0, {"input": gates, "hidden": gates}, ("input",)),
        RecurrentTrace(0, 1, {"input": 1 - gates}, ("input",)),  # the backward direction
        RecurrentTrace(1, 0, {"input": gates}, ("input",)),
    ]
    found = saturation(traces, mask)
    # layer 0, both directions: 12 real values (the padded step's 0.01s are not counted)
    assert found["diag/layer0/input/left_saturated"] == 4 / 12  # 0.05 | 0.05, 0.01, 0.09
    assert found["diag/layer0/input/right_saturated"] == 4 / 12  # 0.95, 0.99, 0.91 | 0.95
    assert found["diag/layer1/input/left_saturated"] == 1 / 6
    assert found["diag/layer1/input/right_saturated"] == 3 / 6
    assert not any("hidden" in key for key in found)  # not a gate


def test_parameters_are_grouped_by_part_and_layer():
    assert part_of("embedding.0.weight") == "embedding"
    assert part_of("encoder.layers.1.0.weight_ih_l0") == "encoder/layer1"
    assert part_of("encoder.rnn.bias_hh_l2_reverse") == "encoder/layer2"
    assert part_of("encoder.attention.weight") == "encoder"
    assert part_of("head.1.weight") == "head"


def test_diagnostics_log_saturation_gradients_and_the_step_plot(tmp_path):
    _, recorder = train(tmp_path, diagnostics=True)
    assert sorted(recorder.metrics) == [1, 2]
    epoch = recorder.metrics[2]
    for key in ("left_saturated", "right_saturated"):
        assert 0.0 <= epoch[f"diag/layer0/forget/{key}"] <= 1.0
    parts = {k.removeprefix("diag/grad_norm/") for k in epoch if k.startswith("diag/grad_norm/")}
    assert parts == {"embedding", "encoder/layer0", "head"}
    assert all(epoch[f"diag/grad_norm/{p}"] > 0 for p in parts)
    folder = tmp_path / "diagnostics"
    for n in (1, 2):
        assert (folder / f"time_step_gradients_epoch_{n:03d}.png").stat().st_size > 0
    norms = json.loads((folder / "time_step_gradients.json").read_text())
    assert sorted(norms) == ["1", "2"] and len(norms["2"]) == 8  # the batch's longest row
    assert all(v >= 0 for v in norms["2"]) and norms["2"][0] > 0
    assert (str(folder), "diagnostics") in recorder.artifacts


def test_diagnostics_do_not_change_training(tmp_path):
    plain, _ = train(tmp_path / "plain", diagnostics=False)
    watched, _ = train(tmp_path / "watched", diagnostics=True)
    after = watched.state_dict()
    for name, weight in plain.state_dict().items():
        assert torch.equal(weight, after[name]), name


def test_an_untraceable_encoder_skips_saturation_once(tmp_path, capsys):
    _, recorder = train(tmp_path, diagnostics=True, encoder=Untraceable)
    said = [line for line in capsys.readouterr().out.splitlines() if "no trace" in line]
    assert len(said) == 1 and "Untraceable" in said[0]
    assert not any("saturated" in key for key in recorder.metrics[2])
    assert recorder.metrics[2]["diag/grad_norm/encoder/layer0"] > 0
