"""Fixtures of the runtime tests."""

import pytest
import torch


@pytest.fixture
def full_fp32():
    """No TF32 while comparing CUDA with CPU numbers."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
