"""What ``bench/gpu_check.py`` probes inside its own process: the recurrent layers' dtype
under ``trainer.amp=true`` and host syncs per training step. Each probe goes through the
pipeline's public pieces (composed config, ``build_model``, ``fit``), so it keeps working
whatever shape the AMP policy takes.
"""

from __future__ import annotations

import warnings
from typing import Any

import common
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

#: Operators that make the host wait for the device (counted on the CPU).
SYNC_OPS = {"aten::_local_scalar_dense", "aten::item", "aten::nonzero"}
PROBE_OVERRIDES = (
    "embedding.dim=32",
    "embedding.dropout=0",
    "encoder=lstm",
    "encoder.hidden_size=32",
    "encoder.num_layers=2",
    "head.dropout=0",
)


class SyncCounter(TorchDispatchMode):
    """Counts :data:`SYNC_OPS` (the CPU's view of a host sync)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func.name() in SYNC_OPS
        return func(*args, **(kwargs or {}))


def _context(device: torch.device, batches: int, tmp: str, lm: bool) -> Any:
    from pipeline.config.schemas import TrainerConfig
    from pipeline.training.context import local_context

    trainer = TrainerConfig(
        max_epochs=1, batch_size=8, bptt=16, device=str(device), amp=True, progress="none"
    )
    if lm:
        trainer.monitor, trainer.monitor_mode = "val/loss", "min"
    return local_context(trainer, checkpoint_dir=f"{tmp}/{lm}-{batches}")


def _classifier_task(device: torch.device, batches: int, tmp: str) -> tuple[Any, nn.Module, Any]:
    from pipeline.data.batching import EncodedSplit
    from pipeline.model.assembly import build_model
    from pipeline.tasks.classification import ClassificationTask

    def split(rows: int, seed: int) -> Any:
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(3, 40, (rows,), generator=g)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        values = torch.randint(2, 60, (int(offsets[-1]),), generator=g)
        labels = values[offsets[:-1]] % 2
        return EncodedSplit.from_flat(values.numpy(), offsets.numpy(), 0, labels)

    torch.manual_seed(0)
    cfg = common.compose(["task=sentiment", *PROBE_OVERRIDES])
    model = build_model(cfg, 60, 0, 2)
    ctx = _context(device, batches, tmp, lm=False)
    splits = {"train": split(8 * batches, 1), "validation": split(32, 2)}
    return ClassificationTask.from_splits(ctx, splits, ["a", "b"]), model, ctx


def _lm_task(device: torch.device, batches: int, tmp: str) -> tuple[Any, nn.Module, Any]:
    from pipeline.model.assembly import build_language_model
    from pipeline.tasks.language_model import LanguageModelTask

    torch.manual_seed(0)
    cfg = common.compose(["task=lm", *PROBE_OVERRIDES])
    model = build_language_model(cfg, 60, 0)
    ctx = _context(device, batches, tmp, lm=True)
    g = torch.Generator().manual_seed(3)
    ids = {
        "train": torch.randint(1, 60, (8 * 16 * batches + 1,), generator=g),
        "validation": torch.randint(1, 60, (8 * 16 * 2 + 1,), generator=g),
    }
    return LanguageModelTask.from_ids(ctx, ids), model, ctx


def rnn_dtypes(device: torch.device, tmp: str) -> dict[str, str]:
    """The output dtypes of the recurrent layers and of the linear layers during one
    training epoch with ``trainer.amp=true``, and the autocast dtype the run picked."""
    from pipeline.training.loop import fit

    task, model, ctx = _classifier_task(device, 2, tmp)
    seen: dict[str, set[str]] = {"rnn": set(), "linear": set()}

    def record(kind: str):
        def hook(module, inputs, output):
            first = output[0] if isinstance(output, tuple) else output
            data = getattr(first, "data", first)  # a PackedSequence's data
            seen[kind].add(str(data.dtype).replace("torch.", ""))

        return hook

    rnn, linear = record("rnn"), record("linear")

    def any_module(module, inputs, output):
        # global: the fused layout runs a stacked RNN that is not a submodule of the model
        if isinstance(module, nn.RNNBase):
            rnn(module, inputs, output)
        elif isinstance(module, nn.Linear):
            linear(module, inputs, output)

    handle = nn.modules.module.register_module_forward_hook(any_module)
    try:
        fit(task, model, ctx)
    finally:
        handle.remove()
    amp = str(ctx.amp).replace("torch.", "") if ctx.amp else "off"
    return {"amp": amp, **{k: "/".join(sorted(v)) or "n/a" for k, v in seen.items()}}


def syncs_per_step(device: torch.device, tmp: str, lm: bool, steps: int = 4) -> float:
    """Host syncs per training step: (syncs of a 2n-step epoch - of an n-step one) / n, so
    what runs once per epoch (validation, checkpoints) cancels out. CUDA: torch's sync
    debug mode; CPU: the operators that would sync a GPU."""
    from pipeline.training.loop import fit

    counts = []
    for batches in (steps, 2 * steps):
        task, model, ctx = (_lm_task if lm else _classifier_task)(device, batches, tmp)
        counts.append(_count_syncs(device, lambda t=task, m=model, c=ctx: fit(t, m, c)))
    return (counts[1] - counts[0]) / steps


def _count_syncs(device: torch.device, run: Any) -> int:
    if device.type != "cuda":
        with SyncCounter() as counter:
            run()
        return counter.count
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)
