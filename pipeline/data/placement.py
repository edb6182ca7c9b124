"""``trainer.data_on_device``: whether the tokenized splits live on the GPU.

Tokenized data is small next to a GPU's memory (PTB's training stream is 7 MB of ids; IMDb
at length 400 about 80 MB), while copying every batch from the host costs the step host
work: indexing, pinning and three tiny copies. So on CUDA the splits move once, when they
take at most :data:`FRACTION` of the free GPU memory (``auto``), and every batch is then
indexed on the device: the same batches, from where they already are.
"""

from __future__ import annotations

import torch

#: ``auto`` keeps the data on the GPU when it takes at most this share of its free memory.
FRACTION = 0.1


def data_on_device(
    setting: str, device: torch.device, nbytes: int, free_bytes: int | None = None
) -> bool:
    """Whether data of ``nbytes`` should live on ``device``.

    ``true`` and ``false`` are obeyed (``true`` on the CPU keeps the data where it is, and
    batches it with the device path: the same batches); ``auto`` says yes on CUDA when the
    data takes at most ``FRACTION`` of the free memory (``free_bytes``, else asked of torch).
    """
    if setting in ("true", "false"):
        return setting == "true"
    if device.type != "cuda":
        return False
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    return nbytes <= FRACTION * free_bytes


def keep_on_device(setting: str, device: torch.device, nbytes: int) -> bool:
    """:func:`data_on_device`, saying so when the data goes to a GPU."""
    keep = data_on_device(setting, device, nbytes)
    if keep and device.type == "cuda":
        print(f"data: {nbytes / 2**20:,.1f} MiB of tokens kept on {device}", flush=True)
    return keep
