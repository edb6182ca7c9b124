"""``model.init_from`` / ``model.init_from_backward`` (issue 19): a classifier or tagger starts
from tiny language models trained in this process on a toy corpus (seconds each)."""

from __future__ import annotations

import copy
import os
import random
from pathlib import Path

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.model.checkpoint import Checkpoint
from pipeline.run import runner
from pipeline.run.runner import run
from tests.run import test_runner
from tests.run.test_runner import composed, toy_reviews

in_tmp = test_runner.in_tmp  # the fixture: each test in its own working directory

WORDS = "the film was and plot actors a it great fine superb lovely awful dull poor bad".split()
#: The language models' settings, which the classifiers must share.
MODEL = ["tokenizer=word", "tokenizer.min_freq=1", "encoder.num_layers=2"]


def train_lm(folder: Path, seed: int, *overrides: str) -> Path:
    """A 2-layer word-level LSTM language model on a toy corpus (the same for every
    ``seed``: one vocabulary); its output folder."""
    rng = random.Random(0)
    folder.mkdir(parents=True)
    lines = (" ".join(rng.choices(WORDS, k=10)) for _ in range(200))
    (folder / "corpus.txt").write_text("\n".join(lines))
    here = Path.cwd()
    os.chdir(folder)
    try:
        result = run(
            composed(
                "task=lm",
                f"data.dir={folder}",
                "data.local_splits={train:corpus.txt}",
                "data.clean=none",
                "trainer.max_epochs=1",
                "trainer.bptt=10",
                "task.sample_tokens=0",
                f"seed={seed}",
                *MODEL,
                *overrides,
            )
        )
    finally:
        os.chdir(here)
    return (folder / result.output_dir).resolve()


@pytest.fixture(scope="module")
def lms(tmp_path_factory) -> dict[str, Path]:
    """A forward and a backward (``data.reverse=true``) language model, trained once for the
    module."""
    root = tmp_path_factory.mktemp("lms")
    backward = train_lm(root / "backward", 1, "data.reverse=true")
    return {"forward": train_lm(root / "forward", 0), "backward": backward}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return Checkpoint.load(folder / "best.pt").model


def spy_on_start(monkeypatch) -> dict:
    """The model's weights right after ``model.init_from`` was applied (before training)."""
    seen: dict = {}
    real = runner.start_from_pretrained

    def spy(model, init_from):
        real(model, init_from)
        seen["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        seen["model"] = copy.deepcopy(model)  # before it trains

    monkeypatch.setattr(runner, "start_from_pretrained", spy)
    return seen


def classify(folder: Path, *overrides: str):
    train = toy_reviews(folder / "train.csv", rows=120)
    return run(composed("data=files", f"data.train={train}", "trainer.max_epochs=1", *overrides))


def test_the_embedding_encoder_and_tokenizer_are_the_language_models(in_tmp, lms, monkeypatch):
    from pipeline.data.tokenize import load_tokenizer

    seen = spy_on_start(monkeypatch)
    result = classify(in_tmp, *MODEL, f"model.init_from={lms['forward']}", "embedding.dropout=0.5")
    source = weights(lms["forward"])
    shared = [k for k in source if k.startswith(("embedding.", "encoder."))]
    assert shared and all(torch.equal(seen["state"][k], source[k]) for k in shared)
    text = "the plot was superb and the actors awful"
    ours, theirs = (
        load_tokenizer(result.output_dir / "tokenizer"),
        load_tokenizer(lms["forward"] / "tokenizer"),
    )
    assert ours.encode(text) == theirs.encode(text)
    assert ours.fingerprint() == theirs.fingerprint()


def test_a_bidirectional_encoder_takes_each_direction_from_its_language_model(
    in_tmp, lms, monkeypatch
):
    seen = spy_on_start(monkeypatch)
    classify(
        in_tmp,
        *MODEL,
        "encoder.bidirectional=true",
        f"model.init_from={lms['forward']}",
        f"model.init_from_backward={lms['backward']}",
    )
    for direction, name in enumerate(("forward", "backward")):
        assert_carried(seen["state"], weights(lms[name]), direction)
    # So each direction's encoder computes exactly what its language model's does (the
    # backward one on the reversed text), on the one embedding (the forward model's).
    model = seen["model"].eval()
    ids = torch.randint(3, 10, (2, 7))
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        x = model.embedding(ids)
        both = model.encoder(x, mask).sequence
        for direction, name in enumerate(("forward", "backward")):
            lm = language_model(lms[name])
            read = x if direction == 0 else x.flip(1)
            out = lm.encoder(read, mask).sequence
            out = out if direction == 0 else out.flip(1)
            width = out.shape[-1]
            half = both[..., direction * width : (direction + 1) * width]
            torch.testing.assert_close(half, out, rtol=0, atol=1e-6)


def assert_carried(state: dict, source: dict, direction: int) -> None:
    """The one-way language model's encoder ``source`` is direction ``direction`` of the
    bidirectional encoder ``state``: equal tensors; a stacked layer's input weights read its
    own direction's columns with the source's values and the other's with zeros."""
    for key, value in source.items():
        if not key.startswith("encoder."):
            continue
        parts = key.split(".")  # encoder.layers.<layer>.<direction>.<parameter>
        layer, parts[3] = parts[2], str(direction)
        mine = state[".".join(parts)]
        if layer != "0" and "weight_ih" in key:  # reads both directions of the layer below
            width = value.shape[1]
            own = slice(direction * width, (direction + 1) * width)
            other = slice((1 - direction) * width, (2 - direction) * width)
            assert torch.equal(mine[:, own], value) and not mine[:, other].any(), key
        else:
            assert torch.equal(mine, value), key


def language_model(folder: Path) -> torch.nn.Module:
    from pipeline.inference.generate import generator_from_checkpoint

    model, _ = generator_from_checkpoint(folder / "best.pt", folder / "tokenizer")
    return model.eval()


def test_every_config_mismatch_is_named_in_one_error_before_the_data(in_tmp, lms):
    with pytest.raises(ConfigError) as raised:
        classify(
            in_tmp,
            "tokenizer=word",
            "tokenizer.min_freq=1",
            "encoder.hidden_size=32",
            "embedding.dim=8",
            f"model.init_from={lms['forward']}",
        )
    message = str(raised.value)
    for fix in ("encoder.hidden_size=16", "encoder.num_layers=2", "embedding.dim=16"):
        assert f"(set {fix})" in message
    assert "dropout" not in message  # regularisation may differ
    assert not list(in_tmp.glob("outputs/*/tokenizer"))  # refused before any data was read


def test_a_vocabulary_mismatch_is_one_clear_error(in_tmp, lms):
    with pytest.raises(ConfigError, match=r"vocabulary: tokenizer.vocab_size is 30000 .*500"):
        classify(in_tmp, *MODEL, "tokenizer.vocab_size=500", f"model.init_from={lms['forward']}")


def test_a_character_lm_into_a_word_config_exits_2_with_one_line(tmp_path, lms):
    from tests.cli import run_pipeline

    train = toy_reviews(tmp_path / "train.csv", rows=60)
    done = run_pipeline(
        "data=files",
        f"data.train={train}",
        "tracking=none",
        "tokenizer=char",
        "encoder.num_layers=2",
        "encoder.hidden_size=16",
        "embedding.dim=16",
        f"model.init_from={lms['forward'] / 'best.pt'}",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "vocabulary: tokenizer=word in the language model, char" in error[0]
    assert "(set tokenizer=word)" in error[0]


def test_a_backward_language_model_given_as_the_forward_one_is_refused(in_tmp, lms):
    with pytest.raises(ConfigError, match="read the text reversed.*model.init_from_backward"):
        classify(in_tmp, *MODEL, f"model.init_from={lms['backward']}")


def test_the_source_run_is_linked_in_a_real_mlflow_store(in_tmp, lms, mlflow_store):
    import mlflow

    tracked = ["tracking=mlflow", f"tracking.uri={mlflow_store}"]
    here = in_tmp / "lm"
    here.mkdir()
    os.chdir(here)
    (here / "corpus.txt").write_text("\n".join(" ".join(WORDS[i:] + WORDS[:i]) for i in range(40)))
    lm = run(
        composed(
            "task=lm",
            f"data.dir={here}",
            "data.local_splits={train:corpus.txt}",
            "data.clean=none",
            "trainer.max_epochs=1",
            "trainer.bptt=10",
            "task.sample_tokens=0",
            *MODEL,
            *tracked,
        )
    )
    os.chdir(in_tmp)
    result = classify(in_tmp, *MODEL, *tracked, f"model.init_from={lm.run_id}")
    tags = mlflow.MlflowClient(mlflow_store).get_run(result.run_id).data.tags
    assert tags["init_from.run_id"] == lm.run_id
    assert tags["init_from.path"].startswith(f"runs:/{lm.run_id}/")
    assert f"Started from the language model runs:/{lm.run_id}/" in tags["mlflow.note.content"]


def test_a_resumed_fine_tuning_run_does_not_load_the_language_model_again(in_tmp, lms, monkeypatch):
    from pipeline.model import transfer
    from pipeline.tasks.classification import ClassificationTask
    from pipeline.training.interrupts import TrainingInterrupted
    from tests.tasks.test_third_party_task import interrupt_at

    source = in_tmp / "source"
    source.mkdir()
    for name in ("best.pt", "tokenizer"):
        os.symlink(lms["forward"] / name, source / name)
    args = [*MODEL, f"model.init_from={source}", "trainer.max_epochs=2", "trainer.batch_size=16"]
    with monkeypatch.context() as patched:
        interrupt_at(patched, ClassificationTask, epoch=2, step=2)
        with pytest.raises(TrainingInterrupted):
            classify(in_tmp, *args)
    (source / "best.pt").unlink()  # the language model is gone: resuming needs none of it
    (source / "best.pt").write_bytes(b"not a checkpoint")
    copies = []
    monkeypatch.setattr(transfer, "transfer", lambda *a: copies.append(a) or 0)
    resumed = classify(in_tmp, *args, "trainer.resume=auto")
    assert copies == [] and "test/accuracy" in resumed.metrics
    last = Checkpoint.load(resumed.output_dir / "last.pt")
    assert last.extra["init_from"]["init_from.path"] == str(source / "best.pt")


def test_a_tagger_starts_from_the_language_model_too(in_tmp, monkeypatch):
    from pipeline.data.tokenize import load_tokenizer
    from tests.tasks.test_tagging import toy_sentences

    files = [toy_sentences(in_tmp / f"{n}.txt", 16, seed) for seed, n in enumerate(SPLITS)]
    # task=tagging suggests tokenizer.zero_digits=true (applied unless the command line says
    # otherwise): a language model for taggers is trained with it
    lm = train_lm(in_tmp / "lm", 0, "tokenizer.zero_digits=true")
    seen = spy_on_start(monkeypatch)
    result = run(
        composed(
            "task=tagging",
            "data=files",
            *(f"data.{n}={f}" for n, f in zip(SPLITS, files, strict=True)),
            "trainer.max_epochs=1",
            *MODEL,
            # tagging's own tokenizer defaults differ: the language model's are given
            "tokenizer.lowercase=true",
            "tokenizer.vocab_size=30000",
            f"model.init_from={lm}",
        )
    )
    source = weights(lm)  # a tagger reads both ways (suggested): the LM is its forward one
    assert torch.equal(seen["state"]["embedding.table.weight"], source["embedding.table.weight"])
    assert_carried(seen["state"], source, direction=0)
    ours = load_tokenizer(result.output_dir / "tokenizer")
    assert ours.fingerprint() == load_tokenizer(lm / "tokenizer").fingerprint()


SPLITS = ("train", "validation", "test")


def test_a_setting_newer_than_the_language_model_fits_at_its_default_only():
    from pipeline.model.transfer import mismatches

    cfg = composed(*MODEL)
    source = {g: dict(cfg[g]) for g in ("tokenizer", "embedding", "encoder")}
    assert mismatches(source, cfg) == []
    older = copy.deepcopy(source)
    del older["encoder"]["forget_bias"]  # an LM trained before the setting existed
    assert mismatches(older, cfg) == []  # it trained with the default: it fits
    changed = composed(*MODEL, "encoder.forget_bias=1.0")
    assert any("encoder.forget_bias" in m for m in mismatches(older, changed))
