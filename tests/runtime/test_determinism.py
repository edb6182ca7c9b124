"""``trainer.tf32`` and ``trainer.deterministic``: torch's process-wide switches, set when
training starts; neither changes a number on the CPU."""

import os

import pytest
import torch

from pipeline.config.schemas import TrainerConfig
from pipeline.errors import PipelineError
from pipeline.runtime.determinism import (
    CUBLAS_WORKSPACE_CONFIG,
    configure_numerics,
    nondeterministic_op,
    set_deterministic,
)


@pytest.fixture
def restore_switches():
    """Put torch's global switches back as they were."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
    )
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:4]
    torch.use_deterministic_algorithms(saved[4])


def test_the_defaults_are_tf32_on_and_deterministic_off():
    trainer = TrainerConfig()
    assert trainer.tf32 is True and trainer.deterministic is False


@pytest.mark.usefixtures("restore_switches")
def test_tf32_follows_the_setting_on_cuda_and_is_left_alone_on_the_cpu():
    cuda = torch.device("cuda")  # only flags are set: no GPU is needed
    configure_numerics(cuda, tf32=True, deterministic=False)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    configure_numerics(cuda, tf32=False, deterministic=False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    configure_numerics(torch.device("cpu"), tf32=True, deterministic=False)
    assert not torch.backends.cuda.matmul.allow_tf32  # a CPU run touches no CUDA switch


@pytest.mark.usefixtures("restore_switches")
def test_deterministic_turns_on_torchs_switches_and_the_cublas_workspace(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = True
    configure_numerics(torch.device("cpu"), tf32=True, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE_CONFIG
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own value is kept
    set_deterministic(True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    set_deterministic(False)  # the next run of the process starts clean
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic


@pytest.mark.usefixtures("restore_switches")
def test_deterministic_training_on_the_cpu_changes_no_number(tmp_path):
    """Through the one loop: the same weights with and without, and the switch is on while
    training (an op without a deterministic kernel would have raised)."""
    from tests.data.test_placement import fit_classifier

    seen = []
    original = torch.use_deterministic_algorithms

    def spy(mode, **kwargs):
        seen.append(mode)
        original(mode, **kwargs)

    results = {}
    for deterministic in (True, False):
        torch.use_deterministic_algorithms = spy
        try:
            results[deterministic] = fit_classifier(
                tmp_path / str(deterministic), "false", deterministic=deterministic
            )[1].state_dict()
        finally:
            torch.use_deterministic_algorithms = original
    assert seen == [True, False]
    for name, weights in results[True].items():
        assert torch.equal(weights, results[False][name]), name


def test_an_op_without_a_deterministic_kernel_becomes_a_user_error():
    torch_message = (
        "scatter_reduce_cuda does not have a deterministic implementation, but you set "
        "'torch.use_deterministic_algorithms(True)'. You can turn off determinism ..."
    )
    error = nondeterministic_op(RuntimeError(torch_message))
    assert isinstance(error, PipelineError)
    assert "scatter_reduce_cuda" in str(error) and "trainer.deterministic=false" in str(error)
    assert nondeterministic_op(RuntimeError("CUDA out of memory")) is None
    assert nondeterministic_op(ValueError("does not have a deterministic")) is None
