"""``python -m pipeline inspect``: a tiny trained classifier's recurrent insides as heatmaps,
an HTML page and JSON, logged to its run; bad arguments and untraceable encoders refused."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_module

from pipeline.inference.classifier import classifier_from_checkpoint
from pipeline.run.runner import run
from tests.cli import cli_env, in_process, run_pipeline
from tests.run.test_runner import FAST, toy_reviews

TEXT = "the superb film was lovely and the plot was dull"
QUANTITIES = {"input", "forget", "candidate", "output", "cell", "hidden"}


def train(folder, store: str, *overrides: str, fast: list[str] = FAST):
    """One epoch on toy reviews in this process, tracked to ``store``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        train_csv = toy_reviews(folder / "train.csv", rows=120)
        settings = [*fast, "data=files", f"data.train={train_csv}", "trainer.max_epochs=1"]
        settings += ["tracking=mlflow", f"tracking.uri={store}", *overrides]
        with initialize_config_module(config_module="conf", version_base=None):
            result = run(compose(config_name="config", overrides=settings))
    return result, folder / result.best_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mlflow_store):
    """A 2-layer bidirectional LSTM classifier, logged to the session's SQLite store."""
    folder = tmp_path_factory.mktemp("inspect")
    result, checkpoint = train(
        folder, mlflow_store, "encoder.num_layers=2", "encoder.bidirectional=true"
    )
    return {
        "folder": folder,
        "run_id": result.run_id,
        "checkpoint": checkpoint,
        "store": mlflow_store,
    }


def expected_trace(checkpoint, layer: int) -> tuple[list[str], torch.Tensor]:
    """The encoder's trace of TEXT, computed here: (quantity names, per quantity [T, 2H])."""
    trained = classifier_from_checkpoint(checkpoint)
    ids = torch.tensor(trained.tokenizer.encode_batch([TEXT]))
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        x = trained.model.embedding(ids)
    traces = [t for t in trained.model.encoder.trace(x, mask) if t.layer == layer]
    return {n: torch.cat([t.quantities[n][0] for t in traces], dim=1) for n in traces[0].quantities}


def test_inspect_writes_heatmaps_a_page_and_the_numbers_and_logs_them_to_the_run(trained):
    out = trained["folder"] / "seen"
    done = run_pipeline(
        "inspect", f"model={trained['run_id']}", f"text={TEXT}", "layer=1", "units=top:5",
        f"out={out}", f"tracking_uri={trained['store']}",
        cwd=trained["folder"], env=cli_env(), timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(out) in done.stdout and trained["run_id"] in done.stdout
    data = json.loads((out / "trace.json").read_text())
    assert data["tokens"] == TEXT.split() and data["layer"] == 1 and data["directions"] == 2
    assert set(data["quantities"]) == QUANTITIES and set(data["gates"]) == {
        "input",
        "forget",
        "output",
    }
    expected = expected_trace(trained["checkpoint"], layer=1)
    units = data["units"]
    assert len(units) == 5 and len(set(units)) == 5
    variance = expected["cell"].var(dim=0, unbiased=False)
    assert variance[units].min() >= variance.sort(descending=True).values[4] - 1e-6
    for name, rows in data["quantities"].items():
        torch.testing.assert_close(
            torch.tensor(rows), expected[name][:, units].float(), atol=1e-6, rtol=0
        )
    assert data["max_difference"] < 1e-5
    for name in QUANTITIES:
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "activations.html").read_text()
    assert all(f">{word}</span>" for word in TEXT.split()) and "<script src" not in page
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=trained["store"])
    logged = {a.path for a in client.list_artifacts(trained["run_id"], "inspect/seen")}
    assert {
        "inspect/seen/activations.html",
        "inspect/seen/trace.json",
        "inspect/seen/cell.png",
    } <= logged


def test_units_may_be_listed_and_a_checkpoint_is_not_logged(trained, tmp_path, capsys):
    code, out, err = in_process(
        capsys, "inspect", f"model={trained['checkpoint']}", f"text={TEXT}", "units=3,0,20",
        f"out={tmp_path}",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads((tmp_path / "trace.json").read_text())
    assert data["units"] == [3, 0, 20] and data["unit_directions"] == [0, 0, 1]
    expected = expected_trace(trained["checkpoint"], layer=0)
    torch.testing.assert_close(
        torch.tensor(data["quantities"]["forget"]),
        expected["forget"][:, [3, 0, 20]].float(),
        atol=1e-6,
        rtol=0,
    )
    assert "logged" not in out


@pytest.mark.parametrize(
    "args, words",
    [
        (["text=a film"], ["model="]),
        (["model=x.pt"], ["text="]),
        (["model=x.pt", "text=a", "units=top:0"], ["units", "top:K"]),
        (["model=x.pt", "text=a", "units=3,x"], ["units", "units=3,17,42"]),
        (["model=x.pt", "text=a", "layer=-1"], ["layer=-1"]),
        (["model=x.pt", "text=a", "colour=red"], ["Unknown argument colour"]),
    ],
)
def test_bad_arguments_are_one_line_before_any_model_loads(args, words, capsys):
    code, out, err = in_process(capsys, "inspect", *args)
    assert code == 2 and "Traceback" not in err
    assert all(word in err for word in words), err


def test_help_is_the_usage_line(capsys):
    code, out, _ = in_process(capsys, "inspect", "--help")
    assert code == 0 and out.startswith("Usage: python -m pipeline inspect model=")


def test_a_layer_or_unit_the_model_lacks_is_named(trained, tmp_path, capsys):
    model = f"model={trained['checkpoint']}"
    code, _, err = in_process(capsys, "inspect", model, "text=a film", "layer=2", f"out={tmp_path}")
    assert code == 2 and "layers 0..1" in err
    code, _, err = in_process(
        capsys, "inspect", model, "text=a film", "units=40", f"out={tmp_path}"
    )
    assert code == 2 and "units 0..31" in err


def test_an_encoder_without_a_trace_is_refused_naming_those_with_one(
    tmp_path, mlflow_store, capsys
):
    fast = ["trainer.progress=none", "embedding.dim=16", "encoder.channels=4"]
    _, checkpoint = train(tmp_path, mlflow_store, "encoder=cnn", "tracking=none", fast=fast)
    code, _, err = in_process(
        capsys, "inspect", f"model={checkpoint}", f"text={TEXT}", f"out={tmp_path / 'o'}"
    )
    assert code == 2 and "Traceback" not in err
    assert "encoder=cnn" in err and all(
        name in err for name in ("lstm", "gru", "rnn", "scratch_lstm")
    )


def test_a_language_models_lstm_is_inspected_token_by_token(tmp_path, data_dir, capsys):
    """A character-level language model (no MLflow): one heatmap row per character."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        patch.setenv("PIPELINE_DATA_DIR", str(data_dir))
        settings = ["task=lm", "data.max_train_chars=3000", "trainer.max_epochs=1"]
        settings += ["trainer.bptt=20", "task.sample_tokens=5", *FAST]
        with initialize_config_module(config_module="conf", version_base=None):
            result = run(compose(config_name="config", overrides=settings))
    out = tmp_path / "lm"
    checkpoint = tmp_path / result.best_checkpoint
    code, _, err = in_process(
        capsys, "inspect", f"model={checkpoint}", "text=the time", f"out={out}"
    )
    assert code == 0, err
    data = json.loads((out / "trace.json").read_text())
    assert data["tokens"] == list("the time")  # the tokenizer's own characters
    assert data["max_difference"] < 1e-5 and len(data["units"]) == 8


def test_a_taggers_encoder_is_inspected_word_by_word(tmp_path, capsys):
    """A tagger whose embedding reads characters too: the words are the text's, split on
    spaces, as ``predict`` tags them."""
    from tests.inference.test_tagging_inference import SENTENCE, conllu_file

    files = {split: conllu_file(tmp_path / f"{split}.conllu", 20, seed) for seed, split in
             enumerate(("train", "validation", "test"))}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        settings = ["task=tagging", "data=files", "embedding=word_char", "trainer.max_epochs=1"]
        settings += [*(f"data.{split}={path}" for split, path in files.items()), *FAST]
        with initialize_config_module(config_module="conf", version_base=None):
            result = run(compose(config_name="config", overrides=settings))
    out = tmp_path / "tagger"
    checkpoint = tmp_path / result.best_checkpoint
    code, _, err = in_process(
        capsys, "inspect", f"model={checkpoint}", f"text={SENTENCE}", f"out={out}"
    )
    assert code == 0, err
    data = json.loads((out / "trace.json").read_text())
    assert data["tokens"] == SENTENCE.split() and data["max_difference"] < 1e-5


def test_a_checkpoint_is_inspected_without_importing_what_it_does_not_use(trained, tmp_path):
    """The command's start is most of its time: inspecting a checkpoint file imports neither
    MLflow nor Hydra (no config is composed) nor matplotlib (the heatmaps are Pillow's)."""
    import subprocess
    import sys

    out = tmp_path / "seen"
    script = (
        "import sys\nfrom pipeline.__main__ import main\n"
        f"main(['inspect', 'model={trained['checkpoint']}', 'text={TEXT}', 'out={out}'])\n"
        "print(sorted(m for m in ('mlflow', 'hydra', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=cli_env(), capture_output=True,
        text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert {p.name for p in out.iterdir()} == {f"{q}.png" for q in QUANTITIES} | {
        "activations.html",
        "trace.json",
    }


def test_inspect_gives_torch_its_threads_back(trained, tmp_path, capsys):
    """It runs torch on one thread (one text's small steps), then restores the setting."""
    threads = torch.get_num_threads()
    code, _, err = in_process(
        capsys, "inspect", f"model={trained['checkpoint']}", f"text={TEXT}", f"out={tmp_path}"
    )
    assert code == 0, err
    assert torch.get_num_threads() == threads
