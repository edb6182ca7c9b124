"""Disk and permission faults as one user error that names the path and the cause.

Two halves: :func:`check_writable` looks before a run writes (a read-only or full folder is
said in a second, not after an epoch), and :func:`storage_fault` turns an ``OSError`` met
while writing (``ENOSPC``, ``EROFS``, ``EACCES``, ...) into a :class:`StorageError`, also
where a library wrapped it (``torch.save`` raises a ``RuntimeError`` whose context is the
``OSError``).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import StorageError

#: errno -> the cause in words. Anything else is not a storage fault (left as it is).
CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
#: Less free space than this in a folder a run writes to counts as a full disk.
MIN_FREE_BYTES = 1 << 20


def advice(cause: str, setting: str) -> str:
    """What to do about ``cause``: free space or fix permissions, or write elsewhere."""
    elsewhere = f"point {setting} at another folder" if setting else "write elsewhere"
    if cause.startswith(("no space", "the disk quota")):
        return f"Free some space there, or {elsewhere}."
    return f"Make it writable, or {elsewhere}."


def message(path: str | Path, cause: str, setting: str = "", what: str = "") -> str:
    """``Cannot write <what> <path> (<setting>): <cause>. <advice>``: the one wording of every
    storage fault (``what`` says what the path is, e.g. "the datasets cache")."""
    where = f" ({setting})" if setting else ""
    what = f"{what} " if what else ""
    return f"Cannot write {what}{path}{where}: {cause}. {advice(cause, setting)}"


def os_cause(exc: BaseException | None) -> OSError | None:
    """The storage ``OSError`` in ``exc`` or in the exceptions it came from, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in CAUSES:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def storage_fault(
    exc: BaseException, path: str | Path | None = None, setting: str = ""
) -> StorageError | None:
    """``exc`` as a :class:`StorageError` naming the path, or None if it is no storage fault.

    ``path`` is the file being written, where the caller knows it better than the error
    (a temporary file's name, or none at all for a write on an open handle).
    """
    if isinstance(exc, StorageError):
        return exc
    cause = os_cause(exc)
    if cause is None:
        return None
    target = path or cause.filename or "a file"
    return StorageError(message(target, CAUSES[cause.errno or 0], setting))


def folder_fault(
    exc: BaseException, folder: str | Path, setting: str, what: str = ""
) -> StorageError | None:
    """A storage fault met writing inside ``folder`` (a cache), named by the folder and the
    setting that moves it; None for any other error (a file elsewhere is not the folder's)."""
    cause = os_cause(exc)
    if cause is None:
        return None
    if cause.filename:
        inside = Path(os.path.abspath(cause.filename))
        if not inside.is_relative_to(os.path.abspath(folder)):
            return None
    elif cause.errno in (errno.EACCES, errno.EPERM):  # which file is not said: maybe not ours
        return None
    return StorageError(message(folder, CAUSES[cause.errno or 0], setting, what))


@contextmanager
def storage_faults(path: str | Path | None = None, setting: str = "") -> Iterator[None]:
    """Raise a storage fault met inside the block as a :class:`StorageError`."""
    try:
        yield
    except Exception as exc:
        fault = storage_fault(exc, path, setting)
        if fault is None:
            raise
        raise fault from None


def nearest_existing(path: Path) -> Path:
    """``path`` or the closest of its parents that exists (what a mkdir -p would write in)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def writable_problem(path: str | Path) -> str | None:
    """Why ``path`` (a folder, or a file) cannot be written, or None if it can.

    A folder that does not exist yet is judged by its closest existing parent, so nothing is
    created here. Asked of the file system (``statvfs``, ``access``), nothing is written.
    """
    target = nearest_existing(Path(path))
    folder = target if target.is_dir() else target.parent
    try:
        stats = os.statvfs(folder)
    except OSError as exc:
        return CAUSES.get(exc.errno or 0, exc.strerror or str(exc))
    if stats.f_flag & os.ST_RDONLY:
        return CAUSES[errno.EROFS]
    if not os.access(folder, os.W_OK | os.X_OK) or not os.access(target, os.W_OK):
        return CAUSES[errno.EACCES]
    if stats.f_blocks == 0:  # a pseudo file system (/proc): no space to judge
        return None
    free = (stats.f_bfree if os.geteuid() == 0 else stats.f_bavail) * stats.f_frsize
    if free < MIN_FREE_BYTES:
        return CAUSES[errno.ENOSPC]
    return None


def check_writable(path: str | Path, setting: str = "") -> None:
    """Raise a :class:`StorageError` naming ``path`` if a run could not write there."""
    problem = writable_problem(path)
    if problem is not None:
        raise StorageError(message(path, problem, setting))
