"""What every kit shares: a :class:`Report` of named checks, the runner that turns any crash
of a component into a named failure, and :func:`resolve`, which finds a component and its
config (by registered name, or class + config) without ever raising.

A kit never crashes on a broken component: a constructor, a forward or an import that
raises, a config that cannot be built, all become failures named after the check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pipeline import registry


class CheckError(AssertionError):
    """Raised by :meth:`Report.assert_ok` with every failure listed."""


class Report:
    """The outcome of a kit: which checks passed, which failed (and why), which were skipped.

    ``failures`` holds ``"<check>: <what differed>"`` lines; ``failed`` maps each failing
    check to its message; ``skipped`` says which checks did not apply and why.
    """

    error: type[CheckError] = CheckError

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        self.passed: list[str] = []
        self.failures: list[str] = []
        self.skipped: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed(self) -> dict[str, str]:
        """Each failing check's name -> what went wrong."""
        return dict(line.split(": ", 1) for line in self.failures)

    def fail(self, check: str, problem: str) -> None:
        self.failures.append(f"{check}: {problem}")

    def run(self, check: str, body: Callable[[], str | None]) -> None:
        """Run one check: ``body`` returns None when it passes, else what differed. A crash
        (any exception, ``SystemExit`` included) is that check's failure, never the kit's."""
        try:
            problem = body()
        except (Exception, SystemExit) as exc:
            problem = f"raised {describe_error(exc)}"
        if problem:
            self.fail(check, problem)
        else:
            self.passed.append(check)

    def assert_ok(self) -> None:
        if self.failures:
            raise self.error(str(self))

    def __str__(self) -> str:
        head = f"{self.kind} '{self.name}': {len(self.passed)} checks passed, "
        lines = [head + f"{len(self.failures)} failed"]
        lines += [f"  FAIL {message}" for message in self.failures]
        lines += [f"  ok   {name}" for name in self.passed]
        lines += [f"  skip {reason}" for reason in self.skipped]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} '{self.name}' ok={self.ok}>"


def describe_error(exc: BaseException) -> str:
    """``TypeName: message``, even for an exception whose ``str`` itself raises."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # a broken __str__ must not break the report
        return type(exc).__name__


def label(component: str | type) -> str:
    """What a report calls a component before it is resolved: its name or class name."""
    return component if isinstance(component, str) else component.__qualname__


def resolve(
    report: Report,
    reg: registry.Registry[Any],
    component: str | type,
    config: Any,
    fields: dict[str, Any],
) -> tuple[registry.Entry[Any], Any] | None:
    """The entry and config a kit checks; None (with the reason in ``report``) when it
    cannot go on.

    ``component`` is a registered name (installed plugins are loaded if it is not known
    yet) or a class; the config is ``config`` when given, else the registered config
    dataclass built with ``name`` and ``fields``. Every problem is a named failure:
    ``registered`` (an unknown name), ``import`` (a declare target that does not import),
    ``config`` (a config that cannot be built or is not a ``ComponentConfig``).
    """
    entry = _entry(reg, component, config, report)
    if entry is None:
        return None
    report.name = entry.name
    try:
        entry.cls  # noqa: B018  (a declared class is imported here)
    except (Exception, SystemExit) as exc:
        report.fail("import", describe_error(exc))
        return None
    if config is None:
        config = _build_config(entry, fields, report)
        if config is None:
            return None
    return entry, config


def _entry(
    reg: registry.Registry[Any], component: str | type, config: Any, report: Report
) -> registry.Entry[Any] | None:
    if isinstance(component, str):
        if component not in reg:  # a plugin's own tests: load the entry points
            from pipeline.plugins import load_plugins

            load_plugins()
        disabled = {u.name: u.reason for u in reg.unavailable()}
        if component in disabled:  # registered, then disabled (a clash, a broken config)
            report.fail("registered", f"'{component}' is disabled: {disabled[component]}")
            return None
        if component not in reg:
            known = ", ".join(reg.names()) or "(none)"
            report.fail(
                "registered",
                f"no {reg.kind} is registered as '{component}' (known: {known}); check the "
                "name, and that your package is installed with its pipeline.plugins entry "
                "point",
            )
            return None
        return reg.get(component)
    target = f"{component.__module__}:{component.__qualname__}"
    for entry in reg.entries():
        if entry.target == target and entry.cls is component:  # imports only that one
            return entry
    if config is None:
        report.fail(
            "config",
            f"{component.__qualname__} is not registered: register or declare it, or pass "
            "its config to the kit",
        )
        return None
    name = getattr(config, "name", "") or component.__qualname__
    return registry.Entry(name, component, type(config), provider="(not registered)")


def _build_config(entry: registry.Entry[Any], fields: dict[str, Any], report: Report) -> Any:
    """The registered config dataclass with ``name`` and ``fields``; None on failure."""
    config_cls = entry.config
    names = {f.name for f in dataclasses.fields(config_cls)}
    if "name" not in names:
        report.fail("config", not_a_component_config(config_cls))
        return None
    unknown = sorted(set(fields) - names)
    if unknown:
        report.fail(
            "config",
            f"{config_cls.__qualname__} has no field {unknown[0]!r} (fields: "
            f"{', '.join(sorted(names))})",
        )
        return None
    try:
        return config_cls(name=entry.name, **fields)
    except (Exception, SystemExit) as exc:
        report.fail("config", f"{config_cls.__qualname__}(...) raised {describe_error(exc)}")
        return None


def not_a_component_config(config_cls: type) -> str:
    name = config_cls.__qualname__
    return (
        f"{name} is not derived from pipeline.registry.ComponentConfig (it has no 'name' "
        f"field, which Hydra sets to the selected option): declare it as "
        f"'@dataclass class {name}(ComponentConfig)'"
    )


def check_config(config: Any, reg: registry.Registry[Any], name: str) -> str | None:
    """The ``config`` check: a ComponentConfig dataclass that survives what Hydra does with
    it (a structured node, overrides merged in, back to the dataclass via the registry)."""
    from omegaconf import OmegaConf

    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return f"the config is a {type(config).__name__}, not a dataclass instance"
    if not isinstance(config, registry.ComponentConfig):
        return not_a_component_config(type(config))
    values = OmegaConf.to_container(OmegaConf.structured(config))
    back = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(type(config)), values))
    if name in reg and reg.get(name).config is type(config):
        back = reg.config_from(OmegaConf.create(values))
    if back != config:
        return f"a round trip through OmegaConf changed it: {config} -> {back}"
    return None


def build(report: Report, what: str, make: Callable[[], Any]) -> Any:
    """``make()``, or None with a ``construct`` failure naming ``what`` was called."""
    try:
        return make()
    except (Exception, SystemExit) as exc:
        report.fail("construct", f"{what} raised {describe_error(exc)}")
        return None
