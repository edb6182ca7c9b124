"""Which device a run uses, and the autocast dtype mixed precision picks on it."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from pipeline.errors import ConfigError
from pipeline.runtime.amp import amp_policy


def resolve_device(name: str) -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.device={name} but no CUDA GPU is available here. Use "
            "trainer.device=auto or trainer.device=cpu."
        )
    return torch.device(name)


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16; None (full precision) on CPU or amp off.
    (``trainer.amp_dtype=auto``; the whole policy is :mod:`pipeline.runtime.amp`.)"""
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return amp_policy(device.type, bf16, amp).dtype


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a context that does nothing (full precision)."""
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
