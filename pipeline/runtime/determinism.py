"""A run's GPU numerics: TF32 matmuls (``trainer.tf32``) and deterministic algorithms
(``trainer.deterministic``). Process-wide torch switches, set once when training starts.

On the CPU neither changes a number: TF32 is a CUDA format, and the CPU kernels the
pipeline uses are deterministic already.
"""

from __future__ import annotations

import os

import torch

from pipeline.errors import PipelineError

#: cuBLAS needs a fixed workspace to be deterministic (NVIDIA's and torch's documented value).
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def configure_numerics(device: torch.device, *, tf32: bool, deterministic: bool) -> None:
    """Set TF32 and deterministic algorithms for a run on ``device`` (both ways, so one
    run's choice does not leak into the next run of the same process)."""
    if device.type == "cuda":
        set_tf32(tf32)
    set_deterministic(deterministic)


def set_tf32(enabled: bool) -> None:
    """TF32 in cuBLAS matmuls and cuDNN (RNNs, convolutions): fp32 range, 10-bit mantissa,
    several times faster on Ampere and later; off = full fp32 (IEEE) everywhere."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels only (an op without one raises, naming itself), cuDNN's
    deterministic algorithms, and the cuBLAS workspace that makes matmuls reproducible.

    ``CUBLAS_WORKSPACE_CONFIG`` is read when cuBLAS first runs: training sets this before
    the model reaches the GPU. A value the user set is kept (torch names it if it is wrong).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    if enabled:
        torch.backends.cudnn.benchmark = False


def nondeterministic_op(exc: BaseException) -> PipelineError | None:
    """The user error for torch's refusal of an op with no deterministic kernel (under
    ``trainer.deterministic=true``); None for any other exception."""
    message = str(exc)
    if not isinstance(exc, RuntimeError) or "does not have a deterministic" not in message:
        return None
    op = message.split(" does not have", 1)[0].strip()
    return PipelineError(
        f"trainer.deterministic=true, but {op} has no deterministic implementation on this "
        "device, so the run stopped there (the checkpoints already written are kept). Run "
        "with trainer.deterministic=false, or on the CPU, which is deterministic."
    )
