"""``head.softmax=adaptive``: torch's AdaptiveLogSoftmaxWithLoss as the language model's
output, its perplexity counted exactly as the full softmax's, and every path (train,
checkpoint, resume, evaluate, generate) working with it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline import registry
from pipeline.errors import ConfigError
from pipeline.inference.generate import load_generator
from pipeline.model.assembly import LanguageModel
from pipeline.model.checkpoint import Checkpoint
from pipeline.model.sampling import sample
from pipeline.run.runner import run
from pipeline.tasks.lm_eval import evaluate_lm
from tests.run.test_runner import composed

VOCAB, WIDTH = 40, 8


def lm_head(**fields: object) -> nn.Module:
    config = registry.heads.config_from({"name": "lm", **fields})
    return registry.heads.get("lm").cls(config, WIDTH, VOCAB)


def language_model(head: nn.Module) -> LanguageModel:
    torch.manual_seed(0)
    embedding = registry.embeddings.get("learned")
    encoder = registry.encoders.get("lstm")
    emb = embedding.cls(embedding.config(name="learned", dim=6, dropout=0.0), VOCAB, 0)
    enc = encoder.cls(encoder.config(name="lstm", hidden_size=WIDTH), 6)
    return LanguageModel(emb, enc, head).eval()


def test_adaptive_perplexity_equals_full_softmax_when_everything_is_in_the_head():
    """torch needs at least one cluster: with cutoffs [V - 1] the head scores the V - 1
    first words and one cluster token, and the cluster holds the last word alone (its own
    softmax over one word is 1). That is exactly a full softmax whose output layer is the
    adaptive head's [V, H] weight and bias: same perplexity over the same tokens."""
    adaptive = lm_head(softmax="adaptive", cutoffs=[VOCAB - 1])
    nn.init.normal_(adaptive.output.head.bias)  # not all zero, to be compared too
    full = lm_head()
    with torch.no_grad():
        full.output.weight.copy_(adaptive.output.head.weight)
        full.output.bias.copy_(adaptive.output.head.bias)
    ids = torch.randint(1, VOCAB, (301,), generator=torch.Generator().manual_seed(1))
    results = [
        evaluate_lm(
            language_model(head), ids, batch_size=4, bptt=9, pad_id=0, device=torch.device("cpu")
        )
        for head in (adaptive, full)
    ]
    assert results[0].tokens == results[1].tokens == 300
    assert results[0].perplexity == pytest.approx(results[1].perplexity, rel=1e-5, abs=0)
    assert abs(results[0].loss - results[1].loss) < 1e-5


def test_the_adaptive_loss_is_the_nll_of_its_full_log_probabilities():
    """With real clusters: the summed loss training uses equals the cross-entropy over
    ``forward``'s log-probabilities (which sum to 1), padded targets left out."""
    head = lm_head(softmax="adaptive", cutoffs=[5, 20], div_value=2.0).eval()
    features = torch.randn(3, 7, WIDTH)
    targets = torch.randint(0, VOCAB, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[2, 4:] = False
    log_probs = head(features)
    assert log_probs.shape == (3, 7, VOCAB)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 7), atol=1e-5)
    expected = F.cross_entropy(log_probs[mask], targets[mask], reduction="sum")
    assert torch.allclose(head.loss_sum(features, targets, mask), expected, atol=1e-4)


def test_adaptive_settings_are_checked():
    with pytest.raises(ConfigError, match="tie_weights=false"):
        lm_head(softmax="adaptive", cutoffs=[10]).tie(nn.Embedding(VOCAB, WIDTH).weight)
    with pytest.raises(ConfigError, match="increasing"):
        lm_head(softmax="adaptive", cutoffs=[20, 10])
    with pytest.raises(ConfigError, match="no cluster for a vocabulary of 40"):
        lm_head(softmax="adaptive", cutoffs=[2000, 10000])
    kept = lm_head(softmax="adaptive", cutoffs=[10, 2000]).output.cutoffs
    assert kept == [10, VOCAB]  # torch appends the vocabulary size


PTB_LM = [
    "task=lm",
    "data=ptb",
    "tokenizer=word",
    "tokenizer.eos=true",
    "tokenizer.split=whitespace",
    "data.max_train_lines=300",
    "data.max_eval_lines=40",
    "head.softmax=adaptive",
    "head.cutoffs=[50,200]",
    "trainer.bptt=10",
    "task.sample_tokens=5",
]


def test_an_adaptive_lm_trains_checkpoints_resumes_and_generates(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(data_dir))
    first = run(composed(*PTB_LM, "trainer.max_epochs=1"))
    last = first.output_dir / "last.pt"
    weights = Checkpoint.load(last).model
    assert any(k.startswith("head.output.tail.") for k in weights)
    again = run(composed(*PTB_LM, "trainer.max_epochs=2", f"trainer.resume={last}"))
    history = Checkpoint.load(again.output_dir / "last.pt").history
    assert [h["epoch"] for h in history] == [1, 2]
    assert again.metrics["test/perplexity"] < 1000  # far below uniform over the vocabulary
    model, tokenizer = load_generator(str(again.best_checkpoint))
    text = sample(model, tokenizer, "the company", max_tokens=12, seed=0)
    assert text.startswith("the company") and len(text.split()) > 2


def test_the_adaptive_head_runs_under_autocast():
    """AMP (trainer.amp on a GPU) runs the model under autocast; bf16 autocast on the CPU
    stands in for it here. torch's adaptive softmax fails under it (half-precision cluster
    log-probabilities copied into a float32 buffer), so the head runs in float32."""
    head = lm_head(softmax="adaptive", cutoffs=[5, 20], div_value=2.0)
    features = torch.randn(3, 7, WIDTH)
    targets = torch.randint(0, VOCAB, (3, 7))
    targets[0, :3] = VOCAB - 1  # in the last cluster
    mask = torch.ones(3, 7, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = head.loss_sum(features, targets, mask)
        log_probs = head(features)
    assert loss.dtype == log_probs.dtype == torch.float32
    expected = F.cross_entropy(log_probs[mask], targets[mask], reduction="sum")
    assert torch.allclose(loss, expected, atol=1e-4)
    loss.backward()
    assert all(p.grad is not None for n, p in head.named_parameters() if ".tail." in n)
