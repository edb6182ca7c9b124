"""Discover plugins through the ``pipeline.plugins`` entry-point group.

Importing a plugin module registers its components. Our own built-ins are loaded the
same way as a third party's. A plugin that fails to import is reported and skipped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

from pipeline.registry import DuplicateComponentError, providing

GROUP = "pipeline.plugins"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    provider: str
    error: str


_loaded = False
failures: list[PluginFailure] = []


def load_plugins(*, warn: bool = True) -> list[PluginFailure]:
    """Import every plugin once; return the ones that failed (each is also warned about)."""
    global _loaded
    if _loaded:
        return failures
    _loaded = True
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        provider = ep.dist.name if ep.dist is not None else ep.name
        try:
            with providing(provider):
                ep.load()
        except DuplicateComponentError:
            raise
        except Exception as exc:  # a broken plugin must not take the others down
            failure = PluginFailure(ep.name, provider, f"{type(exc).__name__}: {exc}")
            failures.append(failure)
            if warn:
                print(
                    f"warning: plugin '{ep.name}' from '{provider}' failed to load and was "
                    f"skipped ({failure.error}).",
                    file=sys.stderr,
                )
    return failures
