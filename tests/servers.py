"""Real servers for tests: an ``mlflow server`` on 127.0.0.1 over a SQLite store."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def launch_mlflow_server(
    db: Path,
    port: int,
    cwd: Path,
    *,
    artifacts: Path | None = None,
    env: dict[str, str] | None = None,
    log: Any = subprocess.DEVNULL,
) -> subprocess.Popen:
    """``mlflow server --workers 1`` on ``db``, started and not waited for."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--artifacts-destination",
            str(artifacts or cwd / "mlartifacts"),
        ],
        cwd=cwd,
        # no background job runner (a huey consumer): nothing here needs it
        env={**(env or os.environ), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop() ends its workers with it
    )


def start_mlflow_server(db: Path, port: int, cwd: Path, timeout: float = 120) -> subprocess.Popen:
    """``mlflow server --workers 1`` on ``db``; returns once ``/health`` answers."""
    server = launch_mlflow_server(db, port, cwd)
    deadline = time.time() + timeout
    while not answers(f"http://127.0.0.1:{port}/health"):
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}")
        if time.time() > deadline:
            stop(server)
            raise RuntimeError(f"mlflow server did not answer /health in {timeout:.0f} s")
        time.sleep(0.3)
    return server


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group, then wait; SIGKILL if it lingers.

    The group, not the process alone: on a loaded machine a worker could outlive the server
    process for a while and go on answering, and a test that stops the server to see the
    run cope with an outage then saw no outage at all."""
    if server.poll() is not None:
        return
    group = os.getpgid(server.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        server.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)  # any worker still there


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def store_has_a_run(db: Path) -> bool:
    """True once a run is recorded: the store's migrations are then done, so a server can
    open it without migrating it a second time."""
    if not db.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return con.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a child process (not its group): SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()  # SIGTERM to `mlflow server` stops its workers too
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
