"""Carried state (a recurrent state, or anything a task carries between batches): any nest
of tensors in tuples, lists and dicts, detached or moved as a whole."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


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
