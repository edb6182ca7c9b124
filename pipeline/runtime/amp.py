"""The mixed-precision policy: which dtype autocast uses, whether the RNN layers run inside
it, and whether the loss is scaled.

Why RNNs are special: PyTorch's autocast wrapper for cuDNN RNNs casts nn.LSTM / nn.GRU /
nn.RNN to fp16 *whatever dtype autocast was given*. Under bf16 autocast without a
GradScaler, the recurrent core would train in fp16 with no loss scaling, and its small
gradients could underflow to zero silently. So, under ``trainer.amp=true`` on CUDA:

* ``trainer.amp_rnn=fp32`` (the default, the safe one): every ``nn.RNNBase`` runs outside
  autocast, in fp32 (cuDNN uses TF32 where matmuls may); the rest (embedding projections,
  attention, heads) runs under autocast in ``trainer.amp_dtype``. fp16 gets a GradScaler.
* ``trainer.amp_rnn=autocast``: the RNNs run under autocast too (cuDNN: fp16), and a
  GradScaler scales the loss whatever ``amp_dtype`` is.

``trainer.amp_dtype``: ``auto`` (bf16 where the GPU supports it, else fp16) | ``bf16`` |
``fp16``. On the CPU training stays in full precision, as before (``trainer.amp`` is a
CUDA switch). :func:`amp_policy` is a pure function of its inputs, tested on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from pipeline.errors import ConfigError

AMP_DTYPES = ("auto", "bf16", "fp16")
AMP_RNN = ("fp32", "autocast")
HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class AmpPolicy:
    """What mixed precision means for one run."""

    dtype: torch.dtype | None  # autocast dtype; None: full precision, no autocast
    grad_scaler: bool  # scale the loss (fp16 gradients underflow without it)
    rnn_fp32: bool  # RNN layers run outside autocast, in fp32

    def describe(self) -> str:
        """One line for logs: ``bf16 autocast, RNNs in fp32, no loss scaling``."""
        if self.dtype is None:
            return "full precision (fp32)"
        name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        rnn = "RNNs in fp32" if self.rnn_fp32 else "RNNs under autocast (fp16 on cuDNN)"
        scaling = "a GradScaler" if self.grad_scaler else "no loss scaling"
        return f"{name} autocast, {rnn}, {scaling}"


def amp_policy(
    device_type: str,
    bf16_supported: bool,
    amp: bool,
    amp_dtype: str = "auto",
    amp_rnn: str = "fp32",
) -> AmpPolicy:
    """Decide the policy from the device, whether it has bf16, and the trainer's knobs."""
    if amp_dtype not in AMP_DTYPES or amp_rnn not in AMP_RNN:
        raise ConfigError(
            f"trainer.amp_dtype={amp_dtype} / trainer.amp_rnn={amp_rnn}: amp_dtype must be "
            f"one of {', '.join(AMP_DTYPES)} and amp_rnn one of {', '.join(AMP_RNN)}."
        )
    if not amp or device_type != "cuda":
        return AmpPolicy(dtype=None, grad_scaler=False, rnn_fp32=False)
    if amp_dtype == "bf16" and not bf16_supported:
        raise ConfigError(
            "trainer.amp_dtype=bf16 but this GPU does not support bf16 (it needs compute "
            "capability 8.0 or newer): use trainer.amp_dtype=auto or fp16, or trainer.amp=false."
        )
    if amp_dtype == "auto":
        amp_dtype = "bf16" if bf16_supported else "fp16"
    dtype = torch.bfloat16 if amp_dtype == "bf16" else torch.float16
    rnn_fp32 = amp_rnn == "fp32"
    return AmpPolicy(dtype, grad_scaler=dtype == torch.float16 or not rnn_fp32, rnn_fp32=rnn_fp32)


def policy_for(device: torch.device, trainer: Any) -> AmpPolicy:
    """The policy of a run on ``device`` with the ``trainer`` config."""
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return amp_policy(
        device.type,
        bf16,
        bool(trainer.amp),
        getattr(trainer, "amp_dtype", "auto"),
        getattr(trainer, "amp_rnn", "fp32"),
    )


def apply_policy(model: nn.Module, policy: AmpPolicy) -> None:
    """Make ``model``'s RNN layers run outside autocast when the policy says so."""
    if policy.dtype is not None and policy.rnn_fp32:
        keep_rnns_fp32(model)


def keep_rnns_fp32(model: nn.Module) -> int:
    """Run every ``nn.RNNBase`` of ``model`` outside autocast, on fp32 inputs (hooks: the
    weights and the state_dict are unchanged). Idempotent; returns the RNNs hooked."""
    hooked = 0
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            if not getattr(module, "_pipeline_fp32", False):
                enter, leave = _autocast_off_hooks()
                module.register_forward_pre_hook(enter, with_kwargs=True)
                module.register_forward_hook(leave, with_kwargs=True, always_call=True)
                module._pipeline_fp32 = True
            hooked += 1
    return hooked


def _autocast_off_hooks() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """A pre-hook that leaves autocast (casting the inputs to fp32) and a hook that
    re-enters it after the forward, even when the forward raised."""
    open_guards: list[Any] = []

    def enter(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        device_type = next(module.parameters()).device.type
        if not torch.is_autocast_enabled(device_type):
            open_guards.append(None)
            return None
        guard = torch.autocast(device_type, enabled=False)
        guard.__enter__()
        open_guards.append(guard)
        return _to_fp32(args), _to_fp32(kwargs)

    def leave(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        guard = open_guards.pop() if open_guards else None
        if guard is not None:
            guard.__exit__(None, None, None)

    return enter, leave


def _to_fp32(value: Any) -> Any:
    """Half-precision tensors (also inside tuples, lists, dicts, packed sequences) in fp32."""
    if isinstance(value, PackedSequence):
        return value.to(torch.float32) if value.data.dtype in HALF else value
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in HALF else value
    if isinstance(value, tuple):
        return type(value)(_to_fp32(v) for v in value) if type(value) is tuple else value
    if isinstance(value, list):
        return [_to_fp32(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_fp32(v) for k, v in value.items()}
    return value
