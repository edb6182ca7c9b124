"""A sweep through submitit (``hydra/launcher=submitit_local``) records the shape every launcher
records: one MLflow parent run, one nested child run per job.

submitit pickles each job (the launcher, its Hydra context with the sweep callback, the
config) into ``<sweep dir>/.submitit/<job id>/`` and runs it in a new process, as
``submitit_slurm`` does on a cluster's node; the submitting process keeps the parent run.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.cli import cli_env
from tests.run.test_sweep import assert_parent_with_children, runs_by_name, sweep

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed (pip install hydra-submitit-launcher)",
)


def test_submitit_jobs_are_children_of_the_sweeps_parent(tmp_path, data_dir, hf_cache):
    env = cli_env(data_dir, hf_cache)
    done = sweep(tmp_path, env, "hydra/launcher=submitit_local", "encoder=lstm,gru")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_parent_with_children(tmp_path, "sweep-encoder=lstm,gru", {"lstm-h8-sst2", "gru-h8-sst2"})
    runs = runs_by_name(tmp_path)
    parent = runs.pop("sweep-encoder=lstm,gru")
    assert parent.data.tags["launcher"].endswith("submitit_launcher.LocalLauncher")
    # each child ran in a process of submitit's: its header is in that job's log, not here
    logs = Path(parent.data.tags["sweep_dir"], ".submitit").glob("*/*_log.out")
    headers = {line for log in logs for line in log.read_text().splitlines()}
    for name in runs:
        assert any(line.startswith(f"== {name}: ") for line in headers), name
        assert f"== {name}: " not in done.stdout


SLURM = [  # the settings the README's cluster example sets
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=gpu",
    "hydra.launcher.timeout_min=120",
    "hydra.launcher.gpus_per_node=1",
    "hydra.launcher.cpus_per_task=8",
    "hydra.launcher.mem_gb=32",
]


def test_slurm_settings_reach_the_sbatch_script(tmp_path, data_dir, hf_cache):
    """With a stand-in ``sbatch`` that keeps the script it is given and refuses it: the
    launcher settings become ``#SBATCH`` lines, and the refused sweep's parent ends FAILED."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it first
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/job.sh\nexit 1\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = cli_env(data_dir, hf_cache, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    done = sweep(tmp_path, env, *SLURM, "encoder=lstm,gru")
    assert done.returncode != 0
    script = (tmp_path / "job.sh").read_text().splitlines()
    for line in ("partition=gpu", "time=120", "gpus-per-node=1", "cpus-per-task=8", "mem=32GB"):
        assert f"#SBATCH --{line}" in script
    assert "#SBATCH --array=0-1%2" in script  # one array task per job, both at once
    parent = runs_by_name(tmp_path)["sweep-encoder=lstm,gru"]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["launcher"].endswith("submitit_launcher.SlurmLauncher")
