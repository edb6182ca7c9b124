"""What the data *is*, by content: keys for the caches of local files.

Modification times are not content: ``cp -p``, ``rsync -a``, ``tar x`` and ``touch -r`` give an
edited file its old time. So a local file's cache entry is named by its size and a sha256 of
its bytes (:func:`content_name`), never by its path and time alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def files_digest(files: Iterable[str | Path]) -> str:
    """sha256 over each file's size and bytes, in the order given."""
    digest = hashlib.sha256()
    for name in files:
        path = Path(name)
        digest.update(f"{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def content_name(files: Iterable[str | Path]) -> str:
    """A ``datasets`` config name that keys its cache on the files' content."""
    return "content-" + files_digest(files)[:20]
