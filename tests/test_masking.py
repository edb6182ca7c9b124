"""The padded-batch helpers of ``pipeline.masking``."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.masking import reverse_within_length

LENGTHS = torch.tensor([6, 3, 1, 0])


class RecordOps(TorchDispatchMode):
    """The aten ops that run inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def reference(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    steps = torch.arange(x.size(1))[None]
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return torch.stack([x[b, index[b]] for b in range(x.size(0))])


def test_reverse_within_length_reverses_real_steps_and_keeps_padding():
    x = torch.randn(4, 6, 3)
    out = reverse_within_length(x, LENGTHS)
    assert torch.equal(out, reference(x, LENGTHS))
    assert torch.equal(reverse_within_length(out, LENGTHS), x)  # its own inverse


def test_reverse_within_length_backward_is_a_gather_without_atomics():
    """Each step's gradient comes from exactly one output step, by a gather: no scatter-add
    (float atomics on CUDA, a slow path under deterministic algorithms)."""
    x = torch.randn(4, 6, 3, dtype=torch.double, requires_grad=True)
    out = reverse_within_length(x, LENGTHS)
    grad = torch.randn_like(out)
    with RecordOps() as recorded:
        (got,) = torch.autograd.grad(out, x, grad)
    assert not {"scatter_add", "index_add", "index_put", "scatter"} & set(recorded.ops)
    assert torch.equal(got, reference(grad, LENGTHS))  # the same permutation
    assert torch.autograd.gradcheck(lambda t: reverse_within_length(t, LENGTHS), (x,))
    assert torch.autograd.gradgradcheck(lambda t: reverse_within_length(t, LENGTHS), (x,))
