"""One writer per run folder: ``run.lock`` in the output folder and the checkpoint folder.

Two processes writing one folder overwrite each other's ``last.pt``, ``best.pt``,
``tokenizer/`` and ``config.yaml`` without a word (two runs given the same
``hydra.run.dir`` or ``trainer.checkpoint_dir``, or two resumes of one run). The lock is an
``fcntl.flock`` on ``run.lock``, which holds the writer's pid for the message: the kernel
drops it when the process ends however it ends (``kill -9`` too), so the lock file a dead
run leaves behind is simply taken over. Where ``fcntl`` does not exist (Windows) there is
no lock.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.errors import PipelineError

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "run.lock"


class FolderInUse(PipelineError):
    """Another live process writes the folder this run would write."""


class FolderLock:
    """The lock on one folder, held by this process until :meth:`release`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock (creating the folder), or raise :class:`FolderInUse`."""
        if fcntl is None or self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise FolderInUse(self._in_use(holder)) from None
            if self._same_file(fd):  # not a lock file its holder removed meanwhile
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def _same_file(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def _in_use(self, holder: str) -> str:
        return (
            f"{self.folder} is being written by another run (pid {holder}, see "
            f"{self.path}): two runs in one folder would overwrite each other's checkpoints "
            "and results. Wait for that run to end, or give this run its own folder (leave "
            "hydra.run.dir and trainer.checkpoint_dir unset: every run gets a new one)."
        )

    def release(self) -> None:
        """Remove the lock file and let go of the lock (removed first, while still held)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


class RunFolders:
    """The folders one run writes (output, checkpoints), each locked once."""

    def __init__(self) -> None:
        self.locks: list[FolderLock] = []

    def claim(self, folder: str | Path) -> None:
        """Lock ``folder`` for this run (a folder already claimed is not locked twice)."""
        resolved = Path(folder).resolve()
        if any(lock.folder.resolve() == resolved for lock in self.locks):
            return
        self.locks.append(FolderLock(folder).acquire())

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()
        self.locks.clear()


#: What Hydra writes into a run folder before the run itself writes anything.
HYDRA_FILES = (".hydra", LOCK_NAME)


def discard_if_unused(folder: Path) -> bool:
    """Remove ``folder`` if it holds nothing but Hydra's own files (``.hydra/``, an empty
    log): a run refused at its start leaves no empty output folder. Its parent goes too when
    that is Hydra's date folder (``outputs/<date>``) and left empty. Call it only while this
    process holds the folder's lock (or nobody does)."""
    if not folder.is_dir():
        return False
    for entry in folder.iterdir():
        empty_log = entry.suffix == ".log" and entry.is_file() and entry.stat().st_size == 0
        if entry.name not in HYDRA_FILES and not empty_log:
            return False
    shutil.rmtree(folder, ignore_errors=True)
    parent = folder.parent
    if parent.parent.name in ("outputs", "multirun"):
        try:
            parent.rmdir()  # only if empty
        except OSError:
            pass
    return True


def discard_unclaimed(folder: Path) -> None:
    """:func:`discard_if_unused` for a run refused before it claimed ``folder`` (a config
    error): only if no other live run holds it."""
    if not folder.is_dir():
        return
    lock = FolderLock(folder)
    try:
        lock.acquire()
    except FolderInUse:
        return
    try:
        discard_if_unused(folder)
    finally:
        lock.release()
