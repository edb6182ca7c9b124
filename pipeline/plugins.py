"""Discover plugins through the ``pipeline.plugins`` entry-point group.

Importing a plugin module registers its components. Our own built-ins are loaded the
same way as a third party's. A plugin that fails to import is reported and skipped; a
component it registers wrongly is disabled by name (:class:`pipeline.registry.Registry`).

Two checks for plugin authors, off the start-up path: :func:`missing_entry_points` (an
installed package that depends on us but declares no entry point: a forgotten
``[project.entry-points."pipeline.plugins"]``) and :func:`check_components` (imports every
declared class and builds every default config: ``python -m pipeline plugins --check``).
"""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import dataclass
from importlib.metadata import distributions, entry_points
from typing import Any

from pipeline import registry
from pipeline.registry import OWN_DISTRIBUTION, providing

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


#: A ``Requires-Dist`` of our distribution, outside any extra (``seqpipe>=0.1``).
_REQUIRES_US = re.compile(
    rf"^Requires-Dist:[ \t]*{OWN_DISTRIBUTION}(?![\w.-])(?![^\n;]*;[^\n]*extra)",
    re.IGNORECASE | re.MULTILINE,
)


def missing_entry_points() -> list[str]:
    """Installed distributions that require ours but declare no ``pipeline.plugins`` entry
    point: most likely a plugin whose entry point was forgotten. Reads every installed
    distribution's metadata (a regular expression on the raw text: parsing it all would
    take a fifth of a second), so it is called only where a hint is wanted."""
    found = set()
    for dist in distributions():
        if not _REQUIRES_US.search(dist.read_text("METADATA") or ""):
            continue
        if not any(ep.group == GROUP for ep in dist.entry_points):
            found.add(dist.metadata["Name"])
    return sorted(found)


def missing_entry_point_hint() -> str:
    """A sentence naming each installed package with a forgotten entry point ("" if none)."""
    return "".join(
        f" Note: distribution '{name}' is installed and depends on {OWN_DISTRIBUTION} but "
        f'declares no [project.entry-points."{GROUP}"]: add one (see plugins/README.md), '
        "then reinstall it."
        for name in missing_entry_points()
    )


#: The class each kind's components derive from (tokenizers and tasks are protocols).
#: Keyed by the registry's ``kind`` (what it calls its components).
BASES = {"embedding": "Embedding", "encoder": "Encoder", "pooler": "Pooler", "head": "Head"}
PROTOCOLS = {"tokenizer": "Tokenizer", "task kind": "Task"}


def check_components() -> list[str]:
    """One line per problem with a registered component: its class does not import or is
    not of its kind, its default config does not validate. Imports every class (and so
    torch): for ``python -m pipeline plugins --check``, never at start-up."""
    from pipeline.tasks import declare_built_in, kinds

    declare_built_in()
    problems = []
    for reg in [*registry.ALL.values(), kinds]:
        problems += [f"{reg.group}={u.name}: {u.reason}" for u in reg.unavailable()]
        for entry in reg.entries():
            problem = _entry_problem(reg, entry)
            if problem:
                problems.append(f"{reg.group}={entry.name} [{entry.provider}]: {problem}")
    return problems


def _entry_problem(reg: registry.Registry[Any], entry: registry.Entry[Any]) -> str | None:
    """What is wrong with one component (its class, its kind, its default config), or None."""
    from pipeline import contracts
    from pipeline.errors import PipelineError

    try:
        cls = entry.cls
        registry.validate(entry.config(name=entry.name), reg.group)
    except PipelineError as error:
        return str(error)
    except Exception as error:  # a default that fails the config's own checks
        return f"its default config fails: {type(error).__name__}: {error}"
    if reg.kind in BASES:
        base = getattr(contracts, BASES[reg.kind])
        if not issubclass(cls, base):
            return (
                f"{entry.target} is not a pipeline.contracts.{base.__name__}: derive it "
                f"from {base.__name__} (class {cls.__name__}({base.__name__}): ...)."
            )
    elif reg.kind in PROTOCOLS:
        protocol = getattr(contracts, PROTOCOLS[reg.kind])
        missing = [m for m in _methods(protocol) if not callable(getattr(cls, m, None))]
        if missing:
            return (
                f"{entry.target} lacks {', '.join(missing)} of the pipeline.contracts."
                f"{protocol.__name__} protocol: add them."
            )
    return None


def _methods(protocol: type) -> list[str]:
    """The methods a protocol asks for (not its properties or plain attributes)."""
    return [
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_")
        and (isinstance(value, classmethod) or inspect.isfunction(value))
    ]
