"""The CUDA paths of the later features: weight, locked and token dropout (issue 15), the
adaptive softmax under AMP and the fine-tuning controls (issue 19), diagnostics and traces
(issue 20). Skipped where no GPU is present (CI never has one); ``bench/gpu_check.sh`` runs
them on a GPU machine."""

from __future__ import annotations

import json

import pytest
import torch

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_weight_dropout_on_cuda_drops_in_training_only(name, full_fp32):
    from tests.plugins.test_regularisation import batch, encoder, recurrent_weights_used

    model = encoder(name, num_layers=2, weight_dropout=0.5)
    x, mask = batch()
    on_cpu = model.eval()(x, mask).sequence
    model, x, mask = model.cuda(), x.cuda(), mask.cuda()
    raws = [directions[0].weight_hh_l0.detach().clone() for directions in model.layers]
    first = recurrent_weights_used(model.train(), x, mask)
    second = recurrent_weights_used(model, x, mask)
    for used, again, raw in zip(first, second, raws, strict=True):
        dropped = used == 0
        assert 0.2 < dropped.float().mean() < 0.8
        torch.testing.assert_close(used[~dropped], raw[~dropped] * 2)
        assert not torch.equal(used, again)
    model(x, mask).sequence.sum().backward()
    grad = model.layers[0][0].weight_hh_l0.grad
    assert grad is not None and grad.abs().sum() > 0 and torch.isfinite(grad).all()
    out = model.eval()(x, mask).sequence  # eval: the raw weights, as on the CPU
    torch.testing.assert_close(out.cpu(), on_cpu, atol=1e-5, rtol=0)


@cuda
def test_locked_and_token_dropout_on_cuda():
    from tests.plugins.test_regularisation import assert_locked, embedding, encoder

    model = encoder(locked_dropout=0.5).cuda()
    x = torch.randn(8, 6, 5, device="cuda")
    mask = torch.ones(8, 6, dtype=torch.bool, device="cuda")
    reference = model.eval()(x, mask).sequence
    assert_locked(model.train()(x, mask).sequence, reference)
    ids = torch.randint(1, 50, (8, 10), device="cuda")
    locked = embedding(dropout=0.5, dropout_kind="locked").cuda().train()
    assert_locked(locked(ids), locked.table(ids).detach())
    tokens = embedding(dropout=0.0, token_dropout=0.5).cuda().train()
    dropped = (tokens(ids) == 0).all(dim=2)
    assert 0.2 < dropped.float().mean() < 0.8


@cuda
def test_the_adaptive_softmax_trains_under_amp_on_cuda():
    """The summed NLL under bf16 autocast is the full log-probabilities' cross-entropy, and
    its gradient reaches the tail clusters."""
    import torch.nn.functional as F

    from tests.plugins.test_adaptive_softmax import VOCAB, WIDTH, lm_head

    head = lm_head(softmax="adaptive", cutoffs=[5, 20], div_value=2.0).cuda()
    features = torch.randn(3, 7, WIDTH, device="cuda")
    targets = torch.randint(0, VOCAB, (3, 7), device="cuda")
    targets[0, :3] = VOCAB - 1  # some targets in the last cluster
    mask = torch.ones(3, 7, dtype=torch.bool, device="cuda")
    mask[2, 4:] = False
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = head.loss_sum(features, targets, mask)
    assert torch.isfinite(loss)
    loss.backward()
    tail = [p.grad for n, p in head.named_parameters() if ".tail." in n]
    assert tail and all(g is not None and g.abs().sum() > 0 for g in tail)
    with torch.no_grad():
        expected = F.cross_entropy(head.eval()(features)[mask], targets[mask], reduction="sum")
    assert abs(loss.item() - expected.item()) < 0.05 * expected.item()


@cuda
def test_a_regularised_fine_tuned_run_with_diagnostics_trains_on_cuda_and_is_inspected(
    tmp_path, monkeypatch
):
    """One in-process run on the GPU with every newer training option at once (AMP, weight
    and locked dropout, concat pooling, layer learning rates, gradual unfreezing, the
    slanted triangular schedule, diagnostics), then ``inspect`` on its checkpoint."""
    from pipeline.inference.inspect import main as inspect
    from pipeline.run.runner import run
    from tests.run.test_runner import composed

    monkeypatch.chdir(tmp_path)
    result = run(
        composed(
            "task=topic",
            "data=long_lag",
            "data.length=12",
            "data.train_size=400",
            "data.validation_size=100",
            "data.test_size=100",
            "pooler=concat",
            "encoder.weight_dropout=0.2",
            "encoder.locked_dropout=0.2",
            "optimizer.layer_lr_decay=2.6",
            "optimizer.schedule=slanted_triangular",
            "trainer.unfreeze=gradual",
            "trainer.diagnostics=true",
            "trainer.amp=true",
            "trainer.device=cuda",
            "trainer.max_epochs=3",
            "trainer.patience=0",
        )
    )
    assert 0.0 <= result.metrics["test/accuracy"] <= 1.0
    diagnostics = result.output_dir / "diagnostics"
    assert (diagnostics / "time_step_gradients_epoch_003.png").stat().st_size > 0
    out = tmp_path / "inspected"
    inspect([f"model={result.best_checkpoint}", "text=s1 s2 s3 s4 s5", f"out={out}"])
    trace = json.loads((out / "trace.json").read_text())
    assert trace["max_difference"] < 1e-4
