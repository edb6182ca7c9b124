"""CUDA paths (cuDNN RNNs, AMP): skipped where no GPU is present (CI never has one)."""

import pytest
import torch

from pipeline.config.schemas import OptimizerConfig, TrainerConfig
from pipeline.data.batching import EncodedSplit
from pipeline.model.assembly import build_model
from pipeline.runtime.device import autocast_dtype, resolve_device
from pipeline.tasks.classification import ClassificationTask
from pipeline.training.context import local_context
from pipeline.training.loop import fit

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_device_is_cpu_without_cuda():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        assert autocast_dtype(torch.device("cpu"), amp=True) is None


@cuda
@pytest.mark.parametrize("amp", [True, False])
def test_training_on_cuda_with_and_without_amp(amp, tmp_path):
    import numpy as np
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "embedding": {"name": "learned", "dim": 16, "dropout": 0.0},
            "encoder": {
                "name": "lstm",
                "hidden_size": 16,
                "num_layers": 2,
                "bidirectional": True,
                "dropout": 0.0,
            },
            "pooler": {"name": "max"},
            "head": {"name": "classifier", "hidden_size": 0, "dropout": 0.0},
        }
    )
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 256)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(2, 50, offsets[-1])
    labels = torch.from_numpy((values[offsets[:-1]] % 2).astype(np.int64))
    split = EncodedSplit.from_flat(values, offsets, 0, labels)
    model = build_model(cfg, 50, 0, 2)
    trainer = TrainerConfig(max_epochs=3, device="cuda", amp=amp, progress="none")
    ctx = local_context(trainer, OptimizerConfig(lr=1e-2), checkpoint_dir=tmp_path)
    splits = {"train": split, "validation": split}
    result = fit(ClassificationTask.from_splits(ctx, splits, ["a", "b"]), model, ctx)
    assert result.history[-1]["val/accuracy"] > 0.6
    assert next(model.parameters()).is_cuda


@cuda
@pytest.mark.parametrize("amp_rnn", ["fp32", "autocast"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["both-ways", "one-stack-call"])
def test_the_lstm_dtype_under_the_amp_policy(amp_rnn, bidirectional):
    """amp_rnn=fp32 (the default): the LSTMs run in fp32 outside autocast, the head in the
    autocast dtype; amp_rnn=autocast: cuDNN runs them in half precision, so the loss is
    scaled. One way, the 2 layers run as one multi-layer call (no submodule: seen by a
    global hook)."""
    from pipeline.runtime.amp import apply_policy, policy_for
    from tests.runtime.test_amp import Dtypes, config, every_rnn_dtype

    device = torch.device("cuda")
    policy = policy_for(device, TrainerConfig(amp=True, amp_rnn=amp_rnn))
    model = build_model(config("classifier", bidirectional), 30, 0, 3).to(device)
    apply_policy(model, policy)
    seen = Dtypes(model)
    ids = torch.randint(1, 30, (4, 7), device=device)
    mask = torch.ones(4, 7, dtype=torch.bool, device=device)
    with every_rnn_dtype() as rnn_dtypes, torch.autocast("cuda", dtype=policy.dtype):
        logits = model(ids, mask)
    seen.rnn |= rnn_dtypes
    logits.float().sum().backward()
    assert seen.rnn
    assert seen.linear == {policy.dtype}
    if amp_rnn == "fp32":
        assert seen.rnn == {torch.float32}
        assert policy.grad_scaler == (policy.dtype == torch.float16)
    else:  # fp16 on cuDNN's autocast wrapper (the reason for the policy); never fp32
        assert seen.rnn <= {torch.float16, torch.bfloat16} and policy.grad_scaler


@cuda
@pytest.mark.parametrize("amp_dtype", [None, "auto", "fp16"], ids=["fp32", "auto", "fp16"])
@pytest.mark.parametrize("kind", ["classifier", "lm"])
def test_training_steps_do_not_sync_on_cuda(kind, amp_dtype, tmp_path):
    """The steps of both tasks after the first run with CUDA's sync debug mode set to
    "error" (progress reads off: they are the host reads allowed, every log_every_n_steps)."""
    from tests.training import test_host_syncs as syncs

    task, model = getattr(syncs, "classifier" if kind == "classifier" else "language_model")(
        tmp_path
    )
    trainer = task.ctx.trainer
    trainer.amp, trainer.amp_dtype = amp_dtype is not None, amp_dtype or "auto"
    trainer.progress, trainer.log_every_n_steps = "none", 10**6
    assert task.ctx.device.type == "cuda"

    def strict(batches):
        # The first step may read once: after torch.manual_seed (train_one_epoch seeds),
        # cuDNN's RNN dropout state is seeded again from the generator at the next training
        # call with inter-layer dropout (the LM's fused 2-layer stack), a host read of the new
        # seed (torch's CUDAGeneratorImpl::reset_rnn_state): once per seeding, never per step.
        batches = iter(batches)
        yield next(batches)
        torch.cuda.set_sync_debug_mode("error")  # step 1 has run when the loop asks again
        try:
            yield from batches
        finally:
            torch.cuda.set_sync_debug_mode(0)

    trained = syncs.train_one_epoch(task, model, strict)
    assert trained.seen > 0 and next(model.parameters()).is_cuda


# -- issue 14 (F): the fused RNN layout, data on the device, deterministic runs ------------


@cuda
@pytest.mark.usefixtures("full_fp32")
@pytest.mark.parametrize(
    "name, num_layers, bidirectional",
    [("lstm", 2, False), ("lstm", 2, True), ("gru", 1, True), ("rnn", 3, False)],
)
def test_the_fused_cuda_layout_computes_the_cpu_layout(name, num_layers, bidirectional):
    import copy
    import warnings

    from tests.plugins.test_rnn_layout import batch, build, hooked, run

    torch.manual_seed(0)
    cpu = build(name, "auto", num_layers=num_layers, bidirectional=bidirectional)
    gpu = copy.deepcopy(cpu).cuda()
    calls = hooked(gpu)
    x, mask = batch()
    expected, _ = run(cpu, x, mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. cuDNN's "weights are not ... contiguous"
        # torch >= 2.10 warns when a leaf's gradients come from two streams: this test's
        # input is a leaf that both directions (two streams) read; a model's is not.
        warnings.filterwarnings("ignore", "The AccumulateGrad node's stream", UserWarning)
        got, _ = run(gpu, x.cuda(), mask.cuda())
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=1e-3)
    if num_layers > 1 and not bidirectional:
        assert calls == []  # one multi-layer call
    assert gpu.state_dict().keys() == cpu.state_dict().keys()


@cuda
@pytest.mark.usefixtures("full_fp32")
def test_a_model_trained_in_the_cuda_layout_loads_on_the_cpu():
    from tests.plugins.test_rnn_layout import batch, build

    torch.manual_seed(0)
    gpu = build("lstm", "auto", num_layers=2).cuda()
    optimizer = torch.optim.SGD(gpu.parameters(), lr=0.5)
    x, mask = batch()
    for _ in range(3):
        optimizer.zero_grad()
        gpu(x.cuda(), mask.cuda()).sequence.sum().backward()
        optimizer.step()
    cpu = build("lstm", "auto", num_layers=2)
    cpu.load_state_dict({k: v.cpu() for k, v in gpu.state_dict().items()})
    torch.testing.assert_close(
        cpu.eval()(x, mask).sequence,
        gpu.eval()(x.cuda(), mask.cuda()).sequence.cpu(),
        atol=1e-4,
        rtol=1e-3,
    )


@cuda
def test_data_on_device_auto_keeps_small_splits_on_the_gpu_with_the_same_batches():
    from pipeline.data.batching import batch_order, iterate_batches
    from pipeline.data.placement import data_on_device
    from tests.data.test_placement import assert_same_batches, ragged_split

    split = ragged_split()
    device = torch.device("cuda")
    assert data_on_device("auto", device, split.nbytes)
    resident = split.to_device(device)
    assert resident.on_device.ids.is_cuda
    order = batch_order(split.lengths, 16, shuffle=False, bucket_size=1)
    assert_same_batches(
        iterate_batches(resident, order, device), iterate_batches(split, order, device)
    )


@cuda
def test_deterministic_cuda_training_is_reproducible(tmp_path):
    from pipeline.runtime.determinism import set_deterministic
    from tests.data.test_placement import fit_classifier

    try:
        runs = [
            fit_classifier(tmp_path / str(i), "auto", device="cuda", deterministic=True)[1]
            for i in range(2)
        ]
    finally:
        set_deterministic(False)
    first, second = (run.state_dict() for run in runs)
    for name, weights in first.items():
        assert torch.equal(weights, second[name]), name
