"""Carried state (a recurrent state, or anything a task carries between batches): any nest
of tensors in tuples (namedtuples too), lists and dicts, with None, numbers and strings as
other leaves; detached or moved as a whole, and saved in ``last.pt`` (SIGINT, SIGTERM) in a
form that its safe loading (``weights_only``: tensors and plain data) reads back."""

from __future__ import annotations

import sys
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

#: The key of a namedtuple saved as a plain dict (``weights_only`` refuses the class itself).
NAMEDTUPLE = "__namedtuple__"


def map_tensors(state: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``state`` with ``fn`` applied to every tensor in it (other leaves are kept)."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: map_tensors(v, fn) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        items = [map_tensors(s, fn) for s in state]
        return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
    return state


def detach_state(state: Any) -> Any:
    """Cut the graph behind a carried state (truncated back-propagation through time)."""
    return map_tensors(state, Tensor.detach)


def state_to(state: Any, device: torch.device) -> Any:
    """A carried state moved to ``device``."""
    return map_tensors(state, lambda t: t.to(device))


def state_for_checkpoint(state: Any) -> Any:
    """The state on the CPU, each namedtuple as a plain dict naming its class and fields:
    what a checkpoint loaded with ``weights_only`` can hold (:func:`state_from_checkpoint`
    turns it back)."""
    if isinstance(state, Tensor):
        return state.detach().cpu()
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        kind = type(state)
        fields = {f: state_for_checkpoint(getattr(state, f)) for f in state._fields}
        return {NAMEDTUPLE: f"{kind.__module__}:{kind.__qualname__}", "fields": fields}
    if isinstance(state, dict):
        return {k: state_for_checkpoint(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(state_for_checkpoint(s) for s in state)
    return state


def state_from_checkpoint(saved: Any, device: torch.device) -> Any:
    """A state saved by :func:`state_for_checkpoint`, on ``device``. A namedtuple gets its
    own class back where its module is imported already (it is: the model was built); else
    a namedtuple of the same name and fields (attribute access and unpacking work)."""
    if isinstance(saved, Tensor):
        return saved.to(device)
    if isinstance(saved, dict) and NAMEDTUPLE in saved:
        fields = {f: state_from_checkpoint(v, device) for f, v in saved["fields"].items()}
        return _namedtuple_class(str(saved[NAMEDTUPLE]), tuple(fields))(**fields)
    if isinstance(saved, dict):
        return {k: state_from_checkpoint(v, device) for k, v in saved.items()}
    if isinstance(saved, (list, tuple)):
        return type(saved)(state_from_checkpoint(s, device) for s in saved)
    return saved


def _namedtuple_class(target: str, fields: tuple[str, ...]) -> Any:
    """The namedtuple class ``module:QualName`` if it is loaded (nothing is imported here),
    with these fields; else a new namedtuple class of that name and fields."""
    module, _, qualname = target.partition(":")
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, tuple) and found._fields == fields:
        return found
    return namedtuple(qualname.rpartition(".")[2] or "State", fields)
