"""What labelled data sets and corpora share about where data comes from: the local data
root (``PIPELINE_DATA_DIR``), the ``datasets`` cache, the Hub's offline switches and errors."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pipeline.errors import DataError, PipelineError

SPLITS = ("train", "validation", "test")
DATA_DIR_ENV = "PIPELINE_DATA_DIR"
CACHE_ENV = "SEQPIPE_CACHE"
#: The data presets, ``conf/data/<name>.yaml``; a preset's ``type:`` line says its kind
#: (``corpus``, ``tagged``, ``generated``); labelled data sets have none.
CONF_DATA = Path(__file__).resolve().parents[2] / "conf" / "data"
_TYPE_LINE = re.compile(r"^type:\s*(\w+)", re.MULTILINE)


def data_presets(kind: str | None = "any") -> list[str]:
    """The ``conf/data`` preset names, sorted: all of them (``"any"``), those whose ``type:``
    is ``kind``, or with ``kind=None`` those without a ``type:`` line (labelled data)."""
    names = []
    for path in sorted(CONF_DATA.glob("*.yaml")):
        found = _TYPE_LINE.search(path.read_text(encoding="utf-8"))
        if kind == "any" or (found.group(1) if found else None) == kind:
            names.append(path.stem)
    return names


def user_file(split: str, value: str) -> Path:
    """The absolute path of a user's ``data.<split>=value`` file; a missing one is an error
    that says paths are relative to the working directory."""
    path = Path(os.path.expandvars(value)).expanduser().absolute()
    if not path.is_file():
        raise DataError(
            f"data.{split}={value}: the file {path} does not exist (paths are relative to the "
            f"working directory, {Path.cwd()})."
        )
    return path


def data_root(config: Any, layout: Callable[[Path], str], fallback: str) -> Path | None:
    """The local data folder (``data.dir``, else ``PIPELINE_DATA_DIR``); None: use the Hub.

    A folder that does not exist is an error showing the expected ``layout`` under it and
    what unsetting it falls back to (``fallback``, with ``{origin}`` for the setting).
    """
    value = config.dir or os.environ.get(DATA_DIR_ENV) or None
    if value is None:
        return None
    origin = "data.dir" if config.dir else DATA_DIR_ENV
    root = Path(os.path.expandvars(value)).expanduser().absolute()
    if not root.is_dir():
        raise DataError(
            f"The local data folder {root} (from {origin}) does not exist. Point {origin} at the "
            f"folder that holds the data sets, laid out as: {layout(root)}. "
            + fallback.format(origin=origin)
        )
    return root


def seqpipe_cache(kind: str) -> Path:
    """This project's own cache folder for ``kind`` (``vectors``, ``held_out``):
    ``$SEQPIPE_CACHE/<kind>``, else ``~/.cache/seqpipe/<kind>``."""
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "seqpipe"
    return Path(base) / kind


def write_cache_file(path: Path, write: Callable[[IO[Any]], None], binary: bool = True) -> None:
    """A cache entry written through a temporary file renamed into place, so a reader never
    sees half of one; an unwritable cache caches nothing (the temporary file is removed)."""
    name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as out:
            write(out)
        os.replace(name, path)
    except OSError:
        if name is not None:
            Path(name).unlink(missing_ok=True)


def datasets_cache(config: Any) -> str | None:
    """Where ``datasets`` caches: ``data.cache_dir``, else HF_DATASETS_CACHE, else its default."""
    # datasets reads HF_DATASETS_CACHE once, at import; honour a later change too.
    return config.cache_dir or os.environ.get("HF_DATASETS_CACHE") or None


def cache_fault(error: BaseException, config: Any) -> PipelineError | None:
    """A read-only, full or forbidden ``datasets`` cache met while loading, named as such
    (not as a file that cannot be parsed); None for any other error."""
    import datasets

    from pipeline.runtime.files import folder_fault

    folder = datasets_cache(config) or str(datasets.config.HF_DATASETS_CACHE)
    setting = "data.cache_dir or HF_DATASETS_CACHE"
    return folder_fault(error, folder, setting, what="the datasets cache")


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """No "Failed to read file ..." log line from the builders: the DataError says it."""
    import datasets

    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)


@contextmanager
def offline_from_env() -> Iterator[None]:
    """Honour HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set after ``datasets`` was imported.

    Both libraries read these variables once, at import; without this a late setting is
    ignored and an unreachable Hub costs ~25 s of retries before failing.
    """
    import datasets
    import huggingface_hub.constants as hub_constants

    def on(name: str) -> bool:
        return os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")

    if not (on("HF_HUB_OFFLINE") or on("HF_DATASETS_OFFLINE")):
        yield
        return
    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def hub_errors() -> tuple[type[BaseException], ...]:
    import datasets.exceptions

    errors: list[type[BaseException]] = [OSError, datasets.exceptions.DatasetsError]
    try:
        from huggingface_hub.errors import HFValidationError

        errors.append(HFValidationError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)
