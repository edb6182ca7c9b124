"""The command line: `--help`, `plugins`, and clear one-paragraph errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def cli(*args: str, cwd=None, env_extra: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env_extra or {})})
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_help_lists_every_group_and_its_options():
    done = cli("--help")
    assert done.returncode == 0, done.stderr
    for group in (
        "data",
        "tokenizer",
        "embedding",
        "encoder",
        "pooler",
        "head",
        "optimizer",
        "trainer",
        "tracking",
        "task",
    ):
        assert f"{group}:" in done.stdout, group
    for option in ("lstm", "gru", "rnn", "imdb", "sst2", "trec", "basic_english", "char", "ptb"):
        assert option in done.stdout, option
    assert "sentiment, topic" in done.stdout
    assert "hidden_size" in done.stdout


def test_plugins_lists_components_with_their_provider():
    done = cli("plugins")
    assert done.returncode == 0, done.stderr
    assert "plugins.encoders.rnn.LSTMEncoder" in done.stdout
    assert "[seqpipe " in done.stdout  # the distribution that provides the built-ins


BAD_INPUT = [
    (["encoder=lsmt"], ["encoder=lsmt", "Did you mean 'lstm'", "gru"]),
    (["data=imbd"], ["data=imbd", "Did you mean 'imdb'"]),
    (["encoder.hidden_size=-3"], ["encoder.hidden_size=-3", ">= 1"]),
    (["encoder.dropout=1.5"], ["encoder.dropout=1.5", "< 1"]),
    (["trainer.batch_size=abc"], ["batch_size", "abc"]),
    (["trainer.batch_size=0"], ["trainer.batch_size=0", ">= 1"]),
    (["encoder.hiden_size=3"], ["hiden_size"]),
    (["trainer.device=tpu"], ["trainer.device='tpu'", "cpu"]),
    (["optimizer.lr=-1"], ["optimizer.lr=-1"]),
    (["tokenizer.vocab_size=1"], ["tokenizer.vocab_size=1", ">= 2"]),
]


@pytest.mark.parametrize("args, expected", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_config_is_one_short_message(args, expected, tmp_path):
    done = cli(*args, "tracking=none", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    message = done.stderr.strip()
    for text in expected:
        assert text in message, (text, message)
    assert len(message.splitlines()) <= 6, message
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started


def test_missing_data_directory(tmp_path):
    done = cli("tracking=none", f"data.dir={tmp_path / 'absent'}", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert str(tmp_path / "absent") in done.stderr


def test_full_traceback_on_request(tmp_path):
    done = cli(
        "encoder.hidden_size=-3", "tracking=none", cwd=tmp_path, env_extra={"HYDRA_FULL_ERROR": "1"}
    )
    assert done.returncode != 0
    assert "Traceback" in done.stderr
