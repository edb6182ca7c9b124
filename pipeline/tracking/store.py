"""Opening the MLflow store (the leaf of tracking): a server's health, a SQLite file that
can be written, and a first open that never races another process's.

MLflow creates (and migrates) a SQLite store's tables the first time a process opens it. Two
processes doing that at once collide ("duplicate column name", "table runs already
exists") and one of them fails; so the first open holds a lock on ``<db>.lock`` beside the
database, and the second opens a store that is complete.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pipeline.errors import PipelineError
from pipeline.runtime.files import CAUSES, advice, os_cause, writable_problem

#: SQLite's own words for storage faults (it raises no OSError) -> the cause.
SQLITE_CAUSES = {
    "readonly database": "the database is read-only (the file, or its folder)",
    "database or disk is full": CAUSES[errno.ENOSPC],
}
NO_TRACKING = "or run without tracking: tracking=none"


def reason(exc: BaseException) -> str:
    """``Type: first line of the message``, for a one-line error."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def server_answers(uri: str, timeout: float) -> bool:
    """Whether the MLflow server at ``uri`` answers ``/health`` within ``timeout`` seconds."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as reply:
            return reply.status == 200
    except (OSError, ValueError):
        return False


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///...`` URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?")[0])


def connect_client(uri: str | None) -> tuple[Any, str]:
    """An ``MlflowClient`` for ``uri`` (MLflow's default when None) and the resolved URI.

    A server (``http://...``) is asked for ``/health`` first, so an unreachable one is one
    clear error at once rather than minutes of retries after the data has been loaded. Its
    HTTP retries are shortened (unless set in the environment), so a server that goes down
    mid-run costs seconds, not minutes, before training goes on without it. A SQLite file is
    checked (a database, writable) and opened under its creation lock.
    """
    import os

    import mlflow

    if uri:
        mlflow.set_tracking_uri(uri)
    resolved = mlflow.get_tracking_uri()
    if resolved.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        if not server_answers(resolved, 5.0):
            raise PipelineError(
                f"The MLflow server at {resolved} does not answer (GET {resolved}/health "
                "failed). Start it (mlflow server --host 127.0.0.1 --port ...), fix "
                f"tracking.uri, {NO_TRACKING}."
            )
    database = sqlite_path(resolved)
    if database is not None:
        _check_sqlite_file(resolved, database)
        # Our messages say what went wrong; MLflow would also log each SQL error's traceback.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    try:  # a SQLite or file store is opened (and created) here
        with creation_lock(database):
            return mlflow.MlflowClient(tracking_uri=resolved), resolved
    except Exception as exc:
        raise store_fault(exc, resolved) or PipelineError(
            f"Cannot open the MLflow tracking store at {resolved} ({reason(exc)}). Point "
            "tracking.uri at a store you can write (sqlite:///path/to/mlflow.db in an existing, "
            f"writable folder, or http://host:port for a server), {NO_TRACKING}."
        ) from None


def store_fault(exc: BaseException, uri: str) -> PipelineError | None:
    """A SQLite store that cannot be written (read-only, full, forbidden) as one error naming
    the file and the cause; None for any other failure."""
    database = sqlite_path(uri)
    cause = _storage_cause(exc) if database is not None else None
    return PipelineError(_unwritable(database, cause)) if cause and database else None


def _storage_cause(exc: BaseException) -> str | None:
    """Read-only, full or forbidden, from an OSError or from SQLite's message."""
    found = os_cause(exc)
    if found is not None:
        return CAUSES[found.errno or 0]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # MLflow wraps SQLAlchemy's
        seen.add(id(current))
        text = str(current)
        for key, cause in SQLITE_CAUSES.items():
            if key in text:
                return cause
        current = current.__cause__ or current.__context__
    return None


def _unwritable(database: Path, cause: str) -> str:
    fix = advice(cause, "tracking.uri").rstrip(".")
    return (
        f"Cannot write the MLflow tracking store {database}: {cause}. {fix} "
        f"(sqlite:///path/to/mlflow.db), {NO_TRACKING}."
    )


def _check_sqlite_file(uri: str, path: Path) -> None:
    """A SQLite path that cannot be a database, or cannot be written, fails here at once:
    MLflow would retry it for about two minutes, or fail later with SQLAlchemy's traceback."""
    problem = None
    if path.is_dir():
        problem = "it is a folder, not a database file"
    elif path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                problem = "that file exists and is not an SQLite database"
    if problem:
        raise PipelineError(
            f"Cannot use the MLflow tracking store at {uri}: {problem}. Point tracking.uri at "
            f"an SQLite file (sqlite:///path/to/mlflow.db) or a server (http://host:port), "
            f"{NO_TRACKING}."
        )
    if path.parent.is_dir():  # a missing folder is MLflow's own error ("unable to open")
        cause = writable_problem(path)
        if cause is not None:
            raise PipelineError(_unwritable(path, cause))


@contextmanager
def creation_lock(database: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``<database>.lock`` (no lock for other stores, or where the
    lock file cannot be made: opening then fails on its own, with its own message)."""
    handle = _lock_file(database) if database is not None else None
    if handle is None:
        yield
        return
    import fcntl

    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        yield


def _lock_file(database: Path) -> IO[str] | None:
    try:
        import fcntl  # noqa: F401 (POSIX only)

        return database.with_name(database.name + ".lock").open("a")
    except (ImportError, OSError):
        return None
