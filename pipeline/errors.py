"""User-facing errors: one short paragraph that says what is wrong and how to fix it."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable
from typing import NoReturn


class PipelineError(Exception):
    """An error caused by the user's input (config, data, files), not by a bug.

    The command line prints its message alone, without a traceback, and exits non-zero.
    """

    exit_code = 2
    label = "error"  # the word the command line prints before the message


class ConfigError(PipelineError):
    """A config value is unknown, of the wrong type or out of range."""


class DataError(PipelineError):
    """A data set cannot be found, read or used."""


class StorageError(PipelineError):
    """A file or folder cannot be written: no space left, read-only, no permission.

    Its message names the path and the cause (see :mod:`pipeline.runtime.files`).
    """


def exit_with(exc: PipelineError) -> NoReturn:
    """Print ``error: <message>`` alone and exit with the error's code (the command line's
    way to end on a user error); ``HYDRA_FULL_ERROR=1`` raises it, traceback and all."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise exc
    print(f"{exc.label}: {exc}", file=sys.stderr, flush=True)
    sys.exit(exc.exit_code)


def closest(name: str, choices: Iterable[str]) -> str | None:
    """Return the choice closest to ``name`` (for "did you mean" hints), if any is close."""
    matches = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Format the known choices and the closest one as a hint sentence."""
    choices = sorted(choices)
    hint = closest(name, choices)
    known = ", ".join(choices) if choices else "(none)"
    if hint:
        return f"Did you mean '{hint}'? Known: {known}."
    return f"Known: {known}."
