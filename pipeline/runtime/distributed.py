"""Training past one process with torch's own engine: ``torchrun`` + DistributedDataParallel.

    torchrun --standalone --nproc_per_node=2 -m pipeline task=sentiment ...
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d \
        --rdzv-endpoint=host0:29500 -m pipeline task=sentiment ...

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup` joins the process
group (NCCL on CUDA, gloo on the CPU). ``trainer.batch_size`` stays the *global* batch: every
process builds the same length-bucketed batches from the same seeded generator and takes its
share of each (rows ``rank::world_size``), and each process's loss is its rows' summed loss
over the global batch size, times the world size; DDP averages the gradients, so every step
is the step a single process would take on the whole batch. Validation runs on every
process (the same numbers everywhere, so early stopping agrees without messages); only rank 0
prints, writes checkpoints and talks to MLflow.

Under NCCL the process group is bound to this process's GPU (``device_id``). While rank 0
reads and tokenizes the data the others wait in :meth:`Distributed.barrier`, on a separate
gloo group with a long timeout (:data:`PREPARE_TIMEOUT`): an NCCL barrier would hold a GPU
stream and give up after NCCL's 10 minutes, which a large corpus can take.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch

from pipeline.runtime.device import resolve_device

#: How long the other processes wait for rank 0 to prepare the data (read, tokenize, cache).
PREPARE_TIMEOUT = timedelta(hours=4)


@dataclass
class Distributed:
    """This process's place in the job; a single process is rank 0 of a world of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    wait_group: Any = field(default=None, repr=False, compare=False)  # gloo, long timeout

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (on the gloo group with :data:`PREPARE_TIMEOUT`, when
        :func:`setup` made one): a host-side wait that holds no GPU."""
        if self.enabled:
            torch.distributed.barrier(group=self.wait_group)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over all processes (in place)."""
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process if ``flag`` is true on any (e.g. a stop request)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch."""
        return rows[self.rank :: self.world_size] if self.enabled else rows


def from_environment() -> Distributed:
    """The job torchrun describes in the environment, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    return Distributed(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device_name: str) -> tuple[Distributed, torch.device]:
    """Join torchrun's process group (if launched by it); return the job and this device."""
    job = from_environment()
    device = resolve_device(device_name)
    if not job.enabled:
        return job, device
    if device.type == "cuda":
        device = torch.device("cuda", job.local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.distributed.init_process_group(backend="nccl", device_id=device)
        else:
            torch.distributed.init_process_group(backend="gloo")
    job.wait_group = torch.distributed.new_group(backend="gloo", timeout=PREPARE_TIMEOUT)
    return job, device


def teardown(job: Distributed) -> None:
    if job.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
