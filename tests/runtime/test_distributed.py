"""torchrun with two CPU processes (gloo + DDP) trains like one process at the same global
batch: without dropout, every metric agrees within 1e-4 (float summation order is all that
differs); one MLflow run and one set of checkpoints are written, by rank 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.cli import run_pipeline

SMALL = [
    "task=sentiment",
    "data=sst2",
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
    "data.max_train_samples=1024",
    "data.max_eval_samples=200",
    "trainer.max_epochs=2",
    "trainer.batch_size=32",  # the global batch: 16 rows per process under torchrun
    "encoder.hidden_size=16",
    "embedding.dim=16",
    "embedding.dropout=0",
    "head.dropout=0",
    "tokenizer.vocab_size=2000",
    "trainer.progress=none",
    "tracking.log_model=false",
]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def env(data_dir, hf_cache) -> dict[str, str]:
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_DATASETS_CACHE": str(hf_cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def metrics(cwd: Path, experiment: str = "sentiment") -> tuple[object, dict[str, list[float]]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    curves = {
        key: [
            m.value
            for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        ]
        for key in run.data.metrics
        if key.split("/")[0] in ("val", "test") or key == "train/loss"
    }
    return run, curves


def torchrun(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pipeline",
        *args,
    ]


@pytest.fixture(scope="module")
def single(tmp_path_factory, env) -> Path:
    """The one-process run both tests compare with."""
    cwd = tmp_path_factory.mktemp("single")
    one = run_pipeline(*SMALL, cwd=cwd, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    return cwd


def test_two_processes_match_one_at_the_same_global_batch(tmp_path, env, single):
    pair = tmp_path / "pair"
    pair.mkdir()
    two = subprocess.run(
        torchrun(*SMALL),
        cwd=pair,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    assert two.stdout.count("== run finished") == 1  # rank 0 alone speaks

    run, got = metrics(pair)  # exactly one run in the store
    assert run.data.tags["world_size"] == "2"
    assert_same_curves(got, metrics(single)[1])
    assert len(list(pair.glob("outputs/*/*/best.pt"))) == 1


#: A character language model small enough for seconds an epoch; no dropout anywhere.
SMALL_LM = [
    "task=lm",
    "data.max_train_chars=30000",
    "trainer.max_epochs=2",
    "trainer.batch_size=16",  # 16 streams: 8 per process under torchrun
    "trainer.bptt=25",
    "encoder.hidden_size=32",
    "encoder.num_layers=2",
    "encoder.dropout=0",
    "embedding.dim=16",
    "task.sample_tokens=0",
    "trainer.progress=none",
    "tracking.log_model=false",
]


def test_a_language_model_under_torchrun_matches_one_process(tmp_path, env):
    """The one loop serves language models under torchrun too: each process reads half the
    streams and carries their state; perplexities match one process within 1e-4."""
    curves = {}
    for name, command in (
        ("one", [sys.executable, "-m", "pipeline", *SMALL_LM]),
        ("two", torchrun(*SMALL_LM)),
    ):
        (tmp_path / name).mkdir()
        done = subprocess.run(
            command, cwd=tmp_path / name, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        run, curves[name] = metrics(tmp_path / name, experiment="lm")
    assert run.data.tags["world_size"] == "2"
    assert curves["one"]["val/perplexity"][-1] < 20  # it learned (uniform: 28)
    assert_same_curves(curves["two"], curves["one"])


def assert_same_curves(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, abs=TOLERANCE), key


def test_sigterm_stops_both_processes_at_one_step_and_the_resumed_run_matches_one(
    tmp_path, env, single
):
    """torchrun forwards SIGTERM to both workers; they agree on the step to stop at (polled
    every STOP_POLL_STEPS steps), rank 0 saves last.pt with the epoch's partial sums over
    both processes, and resuming under torchrun ends where the uninterrupted run ends."""
    from pipeline.training.loop import STOP_POLL_STEPS

    args = [a for a in SMALL if not a.startswith("trainer.progress=")]
    args += ["trainer.progress=log", "trainer.log_every_n_steps=3"]  # the cue to send it
    process = subprocess.Popen(
        torchrun(*args),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, sent = [], False
    for line in process.stdout:
        out.append(line)
        if not sent and line.startswith("epoch 1/2 step 3/"):
            process.send_signal(signal.SIGTERM)
            sent = True
    assert process.wait(timeout=120) != 0 and sent, "".join(out)[-3000:]
    output = "".join(out)
    assert f"stopped: Interrupted (SIGTERM) in epoch 1 after step {STOP_POLL_STEPS}" in output
    (last,) = tmp_path.glob("outputs/*/*/last.pt")
    saved = torch.load(last, weights_only=False)["resume"]
    assert saved["step"] == STOP_POLL_STEPS and saved["seen"] == STOP_POLL_STEPS * 32

    resumed = subprocess.run(
        torchrun(*args, f"trainer.resume={last}"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    run, got = metrics(tmp_path)  # the same MLflow run, gone on with
    assert run.info.status == "FINISHED"
    assert_same_curves(got, metrics(single)[1])


def _draws() -> list[float]:
    """The next random numbers of every generator a run's randomness comes from."""
    import random

    import numpy as np

    return [*torch.rand(3).tolist(), random.random(), float(np.random.rand())]


def _rng_rank(rank: int, folder: str, phase: str) -> None:
    """One of two gloo processes: ``save`` gathers both ranks' states into rank 0's file
    (and records what each rank draws next); ``restore`` puts each rank's own back."""
    import random

    import numpy as np

    from pipeline.runtime.distributed import Distributed
    from pipeline.training.interrupts import ResumePoint

    root = Path(folder)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{root / phase}.init", rank=rank, world_size=2
    )
    try:
        job = Distributed(rank, 2, 0)
        if phase == "save":
            torch.manual_seed(100 + rank)
            random.seed(200 + rank)
            np.random.seed(300 + rank)
            point = ResumePoint(epoch=2, step=5)
            point.capture_rng(job)
            torch.save(_draws(), root / f"expected{rank}.pt")
            if job.is_main:
                torch.save(point.state_dict(), root / "point.pt")
        else:
            torch.manual_seed(0)  # what the resumed process would otherwise go on with
            state = torch.load(root / "point.pt", weights_only=True)
            note = ResumePoint.from_state_dict(state).restore_rng(rank, 2, fallback_seed=0)
            torch.save((note, _draws()), root / f"got{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _two_ranks(folder: Path, phase: str) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_rng_rank, args=(r, str(folder), phase)) for r in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0, f"{phase} rank failed ({worker.exitcode})"


def test_each_rank_saves_and_restores_its_own_random_state(tmp_path):
    """Under torchrun, last.pt holds every rank's random states (gathered to rank 0): a
    resumed rank 1 draws what it would have drawn, not rank 0's numbers (issue 14, item 6)."""
    _two_ranks(tmp_path, "save")
    _two_ranks(tmp_path, "restore")
    expected = [torch.load(tmp_path / f"expected{r}.pt") for r in (0, 1)]
    assert expected[0] != expected[1]  # the ranks' streams differ to begin with
    for rank in (0, 1):
        note, got = torch.load(tmp_path / f"got{rank}.pt")
        assert note == ""
        assert got == expected[rank], f"rank {rank}"


def test_another_world_size_goes_on_with_a_clear_note():
    """Resumed with another number of processes: rank 0 keeps its own state, the others
    draw new masks (not rank 0's), and the note says how to get the exact continuation."""
    from pipeline.training.interrupts import ResumePoint

    torch.manual_seed(5)
    point = ResumePoint(epoch=3, step=7)
    point.capture_rng()  # one process: one state
    expected = _draws()
    note = ResumePoint.from_state_dict(point.state_dict()).restore_rng(0, 2, fallback_seed=1)
    assert _draws() == expected
    assert "written by 1 process" in note and "--nproc_per_node=1" in note
    note = ResumePoint.from_state_dict(point.state_dict()).restore_rng(1, 2, fallback_seed=1)
    assert note and _draws()[:3] != expected[:3]


def _slow_main(rank: int, folder: str) -> None:
    """Rank 0 prepares the data for longer than the process group's timeout (2 s here, 10
    minutes under NCCL); rank 1 waits for it in the job's barrier."""
    import time
    from datetime import timedelta

    from pipeline.runtime import distributed

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank))
    torch.distributed.init_process_group(
        "gloo",
        init_method=f"file://{folder}/init",
        rank=rank,
        world_size=2,
        timeout=timedelta(seconds=2),
    )
    try:
        job, _ = distributed.setup("cpu")
        if job.is_main:
            time.sleep(4)
        job.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_ranks_wait_for_rank_0_longer_than_the_process_group_timeout(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_slow_main, args=(r, str(tmp_path))) for r in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]


def test_nccl_is_bound_to_this_process_gpu(monkeypatch):
    """NCCL's process group gets ``device_id`` (this rank's GPU), checked without a GPU."""
    from pipeline.runtime import distributed

    calls: dict[str, object] = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(distributed, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: calls.update(init=kw))
    monkeypatch.setattr(torch.distributed, "new_group", lambda **kw: calls.update(group=kw))
    job, device = distributed.setup("cuda")
    assert device == torch.device("cuda", 1)
    assert calls["init"] == {"backend": "nccl", "device_id": torch.device("cuda", 1)}
    assert calls["group"]["backend"] == "gloo"
    assert calls["group"]["timeout"] >= distributed.PREPARE_TIMEOUT
