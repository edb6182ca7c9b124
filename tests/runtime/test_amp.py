"""The mixed-precision policy (pipeline.runtime.amp), on the CPU: the decision table, and
the RNN layers kept in fp32 outside autocast while the rest runs in bf16 (CPU autocast
supports bf16; on it, as with cuDNN's fp16, an nn.LSTM under autocast runs in low
precision). The CUDA side is in test_cuda.py."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from pipeline.config.schemas import TrainerConfig
from pipeline.errors import ConfigError
from pipeline.model.assembly import build_language_model, build_model
from pipeline.runtime.amp import AMP_DTYPES, AMP_RNN, AmpPolicy, amp_policy, keep_rnns_fp32
from pipeline.tasks.language_model import LanguageModelTask
from pipeline.training.context import RunContext, local_context
from pipeline.training.loop import fit

BF16, FP16 = torch.bfloat16, torch.float16


@pytest.mark.parametrize(
    "device, bf16, amp, dtype, rnn, expected",
    [
        ("cpu", True, True, "auto", "fp32", AmpPolicy(None, False, False)),  # CPU: as before
        ("cuda", True, False, "auto", "fp32", AmpPolicy(None, False, False)),
        ("cuda", True, True, "auto", "fp32", AmpPolicy(BF16, False, True)),  # the default
        ("cuda", False, True, "auto", "fp32", AmpPolicy(FP16, True, True)),  # pre-Ampere
        ("cuda", True, True, "fp16", "fp32", AmpPolicy(FP16, True, True)),
        ("cuda", True, True, "bf16", "autocast", AmpPolicy(BF16, True, False)),
        ("cuda", False, True, "auto", "autocast", AmpPolicy(FP16, True, False)),
    ],
)
def test_the_policy_table(device, bf16, amp, dtype, rnn, expected):
    assert amp_policy(device, bf16, amp, dtype, rnn) == expected


def test_no_rnn_ever_trains_in_half_precision_without_loss_scaling():
    """cuDNN runs an RNN under autocast in fp16 whatever the autocast dtype: every policy
    either keeps RNNs out of autocast or scales the loss; fp16 always scales it."""
    for device, bf16, amp, dtype, rnn in itertools.product(
        ("cpu", "cuda"), (True, False), (True, False), AMP_DTYPES, AMP_RNN
    ):
        if dtype == "bf16" and not bf16 and amp and device == "cuda":
            continue  # refused: the next test
        policy = amp_policy(device, bf16, amp, dtype, rnn)
        rnn_in_autocast = policy.dtype is not None and not policy.rnn_fp32
        assert policy.grad_scaler or not (rnn_in_autocast or policy.dtype == FP16), policy


def test_bf16_on_a_gpu_without_it_is_a_clear_error():
    with pytest.raises(ConfigError, match="trainer.amp_dtype=bf16.*trainer.amp_dtype=auto"):
        amp_policy("cuda", False, True, "bf16", "fp32")


def test_the_trainer_knobs_are_documented_choices():
    trainer = TrainerConfig()
    assert (trainer.amp, trainer.amp_dtype, trainer.amp_rnn) == (True, "auto", "fp32")
    with pytest.raises(ConfigError, match="amp_rnn"):
        amp_policy("cuda", True, True, "auto", "fp8")


def config(head: str, bidirectional: bool) -> object:
    return OmegaConf.create(
        {
            "embedding": {"name": "learned", "dim": 8, "dropout": 0.0},
            "encoder": {
                "name": "lstm",
                "hidden_size": 8,
                "num_layers": 2,
                "bidirectional": bidirectional,
                "dropout": 0.0,
            },
            "pooler": {"name": "max"},
            "head": {"name": head, "dropout": 0.0},
        }
    )


class Dtypes:
    """The output dtype of every call of the model's nn.LSTMs and nn.Linears."""

    def __init__(self, model: nn.Module) -> None:
        self.rnn: set[torch.dtype] = set()
        self.linear: set[torch.dtype] = set()
        for module in model.modules():
            if isinstance(module, (nn.LSTM, nn.Linear)):
                module.register_forward_hook(self._record)

    def _record(self, module: nn.Module, args: tuple, output: object) -> None:
        out = output[0] if isinstance(output, tuple) else output
        (self.rnn if isinstance(module, nn.LSTM) else self.linear).add(out.dtype)


def classify(model: nn.Module) -> torch.Tensor:
    ids = torch.randint(1, 30, (4, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[0, 5:] = False
    with torch.autocast("cpu", dtype=BF16):
        return model(ids, mask)


def test_under_autocast_an_lstm_runs_in_low_precision_unless_kept_in_fp32():
    torch.manual_seed(0)
    model = build_model(config("classifier", bidirectional=True), 30, 0, 3)
    seen = Dtypes(model)
    classify(model)
    assert seen.rnn == {BF16}  # what the policy prevents (cuDNN: fp16, on any autocast)
    assert keep_rnns_fp32(model) == 4  # 2 layers x 2 directions
    assert keep_rnns_fp32(model) == 4  # idempotent: no second set of hooks
    seen.rnn.clear(), seen.linear.clear()
    logits = classify(model)
    assert seen.rnn == {torch.float32} and seen.linear == {BF16}  # the head stays in bf16
    assert torch.is_autocast_enabled("cpu") is False  # nothing leaked out of the forward
    logits.float().sum().backward()
    rnn_grads = [p.grad for m in model.modules() if isinstance(m, nn.LSTM) for p in m.parameters()]
    assert rnn_grads and all(g is not None and g.dtype == torch.float32 for g in rnn_grads)
    assert all(g.abs().sum() > 0 for g in rnn_grads)


def test_a_stack_run_as_one_kernel_call_is_kept_in_fp32_too():
    """The fused layout (CUDA's, forced here) runs a unidirectional stack as one
    multi-layer RNN that is not a submodule; the policy must reach it as well."""
    torch.manual_seed(0)
    model = build_model(config("classifier", bidirectional=False), 30, 0, 3)
    model.encoder.layout = "fused"
    classify(model)  # the stack is built before the policy hooks the layers (as on CUDA)
    keep_rnns_fp32(model)
    with every_rnn_dtype() as seen:
        classify(model)
    assert seen == {torch.float32}


@contextlib.contextmanager
def every_rnn_dtype() -> Iterator[set[torch.dtype]]:
    """The output dtypes of every ``nn.RNNBase`` called inside (a global hook: the fused
    layout's stack is no submodule of the model)."""
    seen: set[torch.dtype] = set()

    def record(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(module, nn.RNNBase):
            seen.add((output[0] if isinstance(output, tuple) else output).dtype)

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


def test_autocast_comes_back_after_an_rnn_that_raised():
    rnn, head = nn.LSTM(4, 4, batch_first=True), nn.Linear(4, 2)
    keep_rnns_fp32(rnn)
    with torch.autocast("cpu", dtype=BF16):
        with pytest.raises(RuntimeError):
            rnn(torch.randn(2, 3, 5))  # wrong input width
        assert torch.is_autocast_enabled("cpu")
        assert head(torch.randn(2, 4)).dtype == BF16


def test_the_loop_trains_a_language_model_under_the_policy(tmp_path, monkeypatch):
    """The loop applies the policy: with bf16 autocast on (forced here on the CPU), the
    LSTM trains in fp32 and the output layer in bf16, state carried across windows."""
    monkeypatch.setattr(
        RunContext, "amp_policy", property(lambda self: AmpPolicy(BF16, False, True))
    )
    trainer = TrainerConfig(
        batch_size=3, bptt=5, max_epochs=1, progress="none", monitor="val/loss", monitor_mode="min"
    )
    ctx = local_context(trainer, checkpoint_dir=tmp_path)
    ids = torch.randint(1, 20, (80,), generator=torch.Generator().manual_seed(0))
    task = LanguageModelTask.from_ids(ctx, {"train": ids, "validation": ids[:30]})
    torch.manual_seed(0)
    model = build_language_model(config("lm", bidirectional=False), 20, 0)
    seen = Dtypes(model)
    book = fit(task, model, ctx)
    assert seen.rnn == {torch.float32} and seen.linear == {BF16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert book.history and torch.isfinite(torch.tensor(book.history[-1]["val/loss"]))
