"""The command line: `--help`, `plugins`, and clear one-paragraph errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli import cli_env, run_pipeline


def cli(*args: str, cwd=None, env_extra: dict[str, str] | None = None):
    return run_pipeline(*args, cwd=cwd, env=cli_env(**(env_extra or {})), timeout=120)


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
    assert "sentiment, tagging, topic" in done.stdout
    assert "hidden_size" in done.stdout


def test_plugins_lists_components_with_their_provider():
    done = cli("plugins")
    assert done.returncode == 0, done.stderr
    assert "plugins.encoders.rnn.LSTMEncoder" in done.stdout
    assert "[seqpipe " in done.stdout  # the distribution that provides the built-ins


#: ``python -m pipeline ARGS``, then whether torch was imported, printed as the process exits.
IMPORTS_TORCH = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules))\n"
    "from pipeline.__main__ import main\n"
    "main(sys.argv[1:])\n"
)


@pytest.mark.parametrize(
    "args",
    [("--help",), ("encoder=lsmt",), ("encoder.hidden_size=-3", "tracking=none")],
    ids=["help", "unknown-option", "out-of-range"],
)
def test_help_and_config_errors_never_import_torch(args, tmp_path):
    """Start-up stays fast (the issue: under 3 s) because torch, about 2 s of imports here,
    loads only once a run is valid: built-in components are declared, imported on use."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_TORCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == (0 if args == ("--help",) else 2), done.stderr
    assert "torch imported: False" in done.stdout, done.stdout[-500:] + done.stderr


# Bad input (unknown options and keys, wrong types, out-of-range values, missing data, ...):
# the catalogue in tests/test_bad_inputs.py runs each case through this command line.


def test_full_traceback_on_request(tmp_path):
    done = cli(
        "encoder.hidden_size=-3", "tracking=none", cwd=tmp_path, env_extra={"HYDRA_FULL_ERROR": "1"}
    )
    assert done.returncode != 0
    assert "Traceback" in done.stderr


def test_a_broken_builtin_install_is_one_error_not_a_traceback(tmp_path):
    """If our own plugin module fails to import (a broken install), ``--help`` and a run
    name the missing default and the plugin that failed, instead of Hydra's traceback."""
    shadow = tmp_path / "site" / "plugins"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('simulated broken install')\n")
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    for args in (("--help",), ("tracking=none",)):
        done = cli(*args, cwd=tmp_path, env_extra={"PYTHONPATH": path})
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert "error: The default tokenizer=word is not available" in done.stderr
        assert "plugin 'builtin' from 'seqpipe' failed to load" in done.stderr
