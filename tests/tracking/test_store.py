"""Opening the SQLite store: two processes creating one fresh ``mlflow.db`` at once both get
a complete store (MLflow's table creation is serialised by a lock beside the file), and a
store that cannot be written is one error naming the file and the cause."""

from __future__ import annotations

import errno
import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.tracking import store
from tests.runtime.test_files import writes_into_read_only_folders


def open_store(uri: str, barrier, results) -> None:
    """In a child process: wait for the others, then open (and so create) the store."""
    try:
        barrier.wait(timeout=60)
        client, _ = store.connect_client(uri)
        client.search_experiments()
        results.put("ok")
    except BaseException as exc:  # noqa: BLE001 (reported to the parent)
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_one_fresh_store_at_once_all_succeed(tmp_path):
    """Before the lock, one of them failed ("duplicate column name: step", "table runs
    already exists"; in each of 7 tries) and its run was lost. Forked after MLflow is
    imported here, and released together, so the children race on the tables, not on their
    imports. One round: the creations are serialised now, ~5 s each on a loaded CPU."""
    import mlflow  # noqa: F401 (imported once, before the fork)

    context = multiprocessing.get_context("fork")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    barrier, results = context.Barrier(3), context.Queue()
    children = [context.Process(target=open_store, args=(uri, barrier, results)) for _ in "abc"]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=300) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert outcomes == ["ok"] * 3, outcomes
    assert (tmp_path / "mlflow.db.lock").is_file()  # the lock lives beside the store


def test_a_read_only_store_names_the_file_and_the_cause(tmp_path, monkeypatch):
    """Read-only ``mlflow.db``: one error naming it (not SQLAlchemy's traceback and "Start
    the server"). Faked through ``access`` so that it holds when the tests run as root."""
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).close()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: Path(path) != database and real_access(path, mode)
    )
    with pytest.raises(PipelineError) as caught:
        store.connect_client(f"sqlite:///{database}")
    text = str(caught.value)
    assert f"Cannot write the MLflow tracking store {database}: permission denied" in text
    assert "tracking.uri" in text and "tracking=none" in text
    assert "Start the server" not in text


@pytest.mark.skipif(writes_into_read_only_folders(), reason="this user writes into them (root)")
def test_a_chmod_read_only_store_is_refused(tmp_path):
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).close()
    database.chmod(0o444)
    database.parent.chmod(0o555)
    with pytest.raises(PipelineError, match="Cannot write the MLflow tracking store"):
        store.connect_client(f"sqlite:///{database}")


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (sqlite3.OperationalError("database or disk is full"), "no space left"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only"),
    ],
)
def test_store_faults_met_later_say_their_cause(error, cause):
    """Starting the run (creating the experiment) fails on a storage fault: the error says
    read-only or full, never "Start the server"."""
    try:
        raise RuntimeError("(sqlite3.OperationalError) wrapped by SQLAlchemy") from error
    except RuntimeError as wrapped:
        fault = store.store_fault(wrapped, "sqlite:////data/mlflow.db")
    assert fault is not None and cause in str(fault) and "/data/mlflow.db" in str(fault)
    assert store.store_fault(ValueError("no such experiment"), "sqlite:////x.db") is None
