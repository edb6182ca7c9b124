"""Every run writes its own folder: runs started in the same second get different ones, a
second writer of one folder is refused, and a run refused at its start leaves no folder."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.run.lock import LOCK_NAME, FolderInUse
from pipeline.run.runner import run
from tests.cli import cli_env, run_pipeline
from tests.run.test_runner import composed, in_tmp, toy_reviews  # noqa: F401 (in_tmp: fixture)

#: Composes the config as `python -m pipeline` does, with the clock stopped at one second,
#: and prints the run and sweep folders it would write.
FOLDERS_AT_ONE_SECOND = textwrap.dedent(
    """
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import pipeline.run  # the config's resolvers, as the command line has them
    from pipeline.config.schemas import register_core_configs
    from pipeline.plugins import load_plugins

    load_plugins()
    register_core_configs()

    with initialize_config_module(config_module="conf", version_base=None):
        OmegaConf.register_new_resolver("now", lambda pattern: "same-second", replace=True)
        cfg = compose(config_name="config", return_hydra_config=True)
        print(cfg.hydra.run.dir, cfg.hydra.sweep.dir)
    """
)


def folders_of_two_processes(**env: str) -> list[list[str]]:
    """The (run, sweep) folders two processes started in the same second would write."""
    started = [
        subprocess.Popen(
            [sys.executable, "-c", FOLDERS_AT_ONE_SECOND],
            env=cli_env(**env),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    return [process.communicate(timeout=120)[0].split() for process in started]


def test_runs_started_in_the_same_second_get_their_own_folders():
    first, second = folders_of_two_processes()
    assert len(first) == len(second) == 2
    assert first[0] != second[0]  # hydra.run.dir
    assert first[1] != second[1]  # hydra.sweep.dir: two sweeps at once
    assert first[0].startswith("outputs/same-second/same-second-")


def test_the_processes_of_one_torchrun_job_share_their_folder():
    job = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}
    first, second = folders_of_two_processes(**job)
    assert first == second  # rank 0 writes, the others read: one folder for the job


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s run lock until it is ended."""
    code = "import sys; from pipeline.run.lock import FolderLock; "
    code += f"FolderLock({str(folder)!r}).acquire(); print('held', flush=True); sys.stdin.read()"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env=cli_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_of_a_checkpoint_folder_is_refused(in_tmp):  # noqa: F811
    shared = in_tmp / "shared"
    shared.mkdir()
    (shared / "last.pt").write_bytes(b"the other run's checkpoint")
    other = hold_lock(shared)
    try:
        train = toy_reviews(in_tmp / "train.csv", rows=100)
        cfg = composed("data=files", f"data.train={train}", f"trainer.checkpoint_dir={shared}")
        with pytest.raises(FolderInUse) as refused:
            run(cfg)
    finally:
        other.communicate(input="", timeout=60)
    message = str(refused.value)
    assert str(shared) in message and f"pid {other.pid}" in message
    assert (shared / "last.pt").read_bytes() == b"the other run's checkpoint"
    assert not (shared / "best.pt").exists()


def test_the_lock_of_a_killed_run_is_taken_over(in_tmp):  # noqa: F811
    folder = in_tmp / "checkpoints"
    folder.mkdir()
    killed = hold_lock(folder)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert (folder / LOCK_NAME).read_text().strip() == str(killed.pid)  # left behind

    train = toy_reviews(in_tmp / "train.csv", rows=100)
    cfg = composed(
        "data=files",
        f"data.train={train}",
        "trainer.max_epochs=1",
        f"trainer.checkpoint_dir={folder}",
    )
    result = run(cfg)
    assert result.best_checkpoint == folder / "best.pt" and (folder / "last.pt").is_file()
    assert not (folder / LOCK_NAME).exists()  # released at the end


@pytest.mark.parametrize(
    ("arg", "said"),
    [
        ("trainer.resume=missing.pt", "trainer.resume=missing.pt: no such checkpoint"),
        ("trainer.monitor=val/nonsense", "trainer.monitor='val/nonsense' is not a metric"),
    ],
    ids=["resume", "config"],
)
def test_a_run_refused_at_its_start_leaves_no_output_folder(tmp_path, arg, said):
    done = run_pipeline("tracking=none", arg, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert said in done.stderr
    left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "outputs").rglob("*"))
    assert left == [], left  # Hydra made the run's folder; the refused run removed it
