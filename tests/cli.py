"""The one way tests run the command line: ``python -m pipeline ...`` in a fresh process.

Only tests whose subject is the command line (its output, exit codes, signals, torchrun,
the served model) use it; the training loop and the run are tested in-process
(``tests/run/test_runner.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PIPELINE = [sys.executable, "-m", "pipeline"]


def cli_env(data_dir: Path | None = None, hf_cache: Path | None = None, **extra: str) -> dict:
    """This process's environment for a pipeline process: the Hub offline, the shared data
    and datasets cache when given, no inherited MLflow store or HYDRA_FULL_ERROR."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI")
    }
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if data_dir is not None:
        env["PIPELINE_DATA_DIR"] = str(data_dir)
    if hf_cache is not None:
        env["HF_DATASETS_CACHE"] = str(hf_cache)
    return env | extra


def run_pipeline(
    *args: str, cwd: Path | str | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m pipeline *args`` to its end; output captured as text."""
    return subprocess.run(
        [*PIPELINE, *args],
        cwd=cwd,
        env=cli_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_pipeline(*args: str, cwd: Path | str, env: dict, **popen: Any) -> subprocess.Popen:
    """``python -m pipeline *args`` started, stdout and stderr merged into one text pipe (to
    read it line by line and signal the process at a chosen moment)."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True} | popen
    return subprocess.Popen([*PIPELINE, *args], cwd=cwd, env=env, **options)


def in_process(capsys: Any, *args: str) -> tuple[int, str, str]:
    """``python -m pipeline *args`` in this process: (exit code, stdout, stderr), read
    through pytest's ``capsys``. For commands that are not the subject of a subprocess test."""
    from pipeline.__main__ import main

    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
