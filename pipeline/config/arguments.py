"""The one ``key=value`` parser of the sub-commands (``predict``, ``generate``, ``evaluate``).

Arguments fill a dataclass: each value is converted to the type of its field's default, a
list field collects every repetition (``text=a text=b``), and a key that belongs to no field
is named with the closest known one. Keys a command forwards elsewhere (``data.*``) are
handed back untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pipeline.errors import ConfigError, did_you_mean

T = TypeVar("T")

_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false"}


def parse_key_values(
    command: str,
    argv: Sequence[str],
    schema: type[T],
    *,
    usage: str = "",
    forward: Callable[[str], bool] = lambda key: False,
    also_known: Sequence[str] = (),
    not_arguments: Sequence[str] = (),
) -> tuple[T, list[str]]:
    """(the arguments as ``schema``, the forwarded ``key=value`` items in their order).

    ``not_arguments``: fields of ``schema`` that the command fills itself.
    """
    args = schema()
    known = {f.name for f in dataclasses.fields(schema)} - set(not_arguments)
    forwarded: list[str] = []
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep:
            hint = f" {usage}" if usage else ""
            raise ConfigError(f"{command} takes key=value arguments, got '{item}'.{hint}")
        if forward(key):
            forwarded.append(item)
        elif key in known:
            _set(args, key, value, command)
        else:
            names = [*sorted(known), *also_known]
            raise ConfigError(f"Unknown argument {key} for {command}. {did_you_mean(key, names)}")
    return args, forwarded


def _set(args: Any, key: str, value: str, command: str) -> None:
    current = getattr(args, key)
    if isinstance(current, list):
        current.append(value)
        return
    kind = type(current)
    try:
        setattr(args, key, _convert(kind, value))
    except ValueError:
        name = _KIND_NAMES.get(kind, f"a {kind.__name__}")
        raise ConfigError(f"{command} {key}={value!r}: expected {name}.") from None


def _convert(kind: type, value: str) -> Any:
    if kind is bool:
        if value.lower() not in ("true", "false"):
            raise ValueError(value)
        return value.lower() == "true"
    return kind(value)
