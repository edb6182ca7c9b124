"""``data=long_lag``: generated from the seed, no files; the label is the first symbol."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from pipeline.config.groups import schema_fields
from pipeline.data.fingerprint import fingerprint
from pipeline.data.labelled import load_data
from pipeline.errors import ConfigError

PRESET = Path(__file__).resolve().parents[2] / "conf" / "data" / "long_lag.yaml"


def long_lag(**overrides):
    """The preset's composed node, with ``overrides``."""
    return OmegaConf.merge(OmegaConf.load(PRESET), OmegaConf.create(overrides))


def rows(data, split):
    return list(data.splits[split]["text"]), list(data.splits[split]["label"])


def test_labels_are_the_first_symbol_of_length_plus_one_symbols():
    data = load_data(long_lag(length=7, num_classes=5, train_size=50), seed=3)
    assert data.labels == ["s0", "s1", "s2", "s3", "s4"]
    assert {s: len(d) for s, d in data.splits.items()} == {
        "train": 50,
        "validation": 500,
        "test": 1000,
    }
    texts, labels = rows(data, "train")
    for text, label in zip(texts, labels, strict=True):
        words = text.split()
        assert len(words) == 8 and set(words) <= set(data.labels)
        assert words[0] == data.labels[label]
    assert len(set(labels)) == 5  # every class occurs
    distractors = {w for t in texts for w in t.split()[1:]}
    assert distractors == set(data.labels)  # the same alphabet follows


def test_the_seed_alone_decides_the_rows():
    node = long_lag(length=5, train_size=40, validation_size=10, test_size=10)
    first, again, other = load_data(node, seed=1), load_data(node, seed=1), load_data(node, 2)
    assert all(rows(first, s) == rows(again, s) for s in first.splits)
    assert rows(first, "train") != rows(other, "train")
    # the data fingerprint a resumed run checks is the same for the same seed
    same = [fingerprint(d.splits, d.source, d.labels) for d in (first, again)]
    assert same[0] == same[1]
    # a larger train split leaves validation and test as they were
    bigger = load_data(long_lag(length=5, train_size=80, validation_size=10, test_size=10), 1)
    assert rows(bigger, "test") == rows(first, "test")


def test_its_keys_are_known_to_the_command_line_and_checked():
    assert {"length", "num_classes", "train_size", "test_size"} <= schema_fields("data", "long_lag")
    with pytest.raises(ConfigError, match="data.num_classes"):
        load_data(long_lag(num_classes=1), seed=0)
    with pytest.raises(ConfigError, match="data.lenght"):
        load_data(long_lag(lenght=5), seed=0)


def test_topic_learns_a_short_lag_in_process(tmp_path, monkeypatch):
    from pipeline.run.runner import run
    from tests.run.test_runner import composed

    monkeypatch.chdir(tmp_path)
    sizes = ["data.train_size=1200", "data.validation_size=100", "data.test_size=200"]
    cfg = composed(
        "task=topic", "data=long_lag", "data.length=2", *sizes, "pooler=last",
        "trainer.max_epochs=3", "encoder.hidden_size=16", "optimizer.lr=0.01",
    )  # fmt: skip
    result = run(cfg)
    assert result.metrics["test/accuracy"] > 0.5  # chance: 1/8
    config = torch.load(result.best_checkpoint, weights_only=True)["config"]
    # what the data suggests, where the command line left the default
    assert config["encoder"]["forget_bias"] == round(math.log(3), 2)
    assert config["encoder"]["input_bias"] == -round(math.log(3), 2)
    assert config["encoder"]["hidden_size"] == 16 and config["trainer"]["batch_size"] == 32


def test_the_lstm_gate_biases_are_added_to_their_gates_only():
    from pipeline import registry

    entry = registry.encoders.get("lstm")
    built = {}
    for bias in (0.0, 2.5):
        torch.manual_seed(0)
        config = entry.config(hidden_size=4, forget_bias=bias, input_bias=-bias)
        built[bias] = entry.cls(config, input_dim=3)
    shift = torch.tensor([-2.5] * 4 + [2.5] * 4 + [0.0] * 8)  # input, forget, cell, output
    after = built[2.5].state_dict()
    for name, plain in built[0.0].state_dict().items():
        if name.endswith("bias_ih_l0"):
            torch.testing.assert_close(after[name] - plain, shift)
        else:
            assert torch.equal(plain, after[name]), name


def test_a_run_is_named_after_the_settings_the_data_suggested(
    tmp_path, monkeypatch, mlflow_store, capsys
):
    import mlflow
    from hydra import compose, initialize_config_module

    from pipeline.run.runner import run

    monkeypatch.chdir(tmp_path)
    sizes = ["data.train_size=64", "data.validation_size=16", "data.test_size=16"]
    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose(config_name="config", overrides=[
            "task=topic", "data=long_lag", "data.length=2", *sizes, "pooler=last",
            "trainer.max_epochs=1", "trainer.progress=none", f"tracking.uri={mlflow_store}",
            "tracking.log_model=false",
        ])  # fmt: skip
    result = run(cfg)  # encoder.hidden_size left at 128: the data suggests 64
    name = mlflow.MlflowClient(mlflow_store).get_run(result.run_id).info.run_name
    assert name.startswith("lstm-h64-long_lag-"), name
    out = capsys.readouterr().out  # the header said h128: the new name is printed when it changes
    assert f"run name: {name} (was lstm-h128-long_lag-" in out
