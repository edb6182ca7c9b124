"""`python -m pipeline evaluate`: a trained classifier on another data set, as a new run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, PipelineError
from pipeline.inference.evaluate import align_labels, parse_args
from tests.cli import run_pipeline


def test_labels_match_by_name_case_or_prefix():
    assert align_labels(["neg", "pos"], ["negative", "positive"]) == [0, 1]
    assert align_labels(["negative", "positive"], ["pos", "neg"]) == [1, 0]
    assert align_labels(["World", "Sports"], ["sports", "WORLD"]) == [1, 0]
    assert align_labels(["a", "b", "c"], ["c"]) == [2]  # a subset of the model's classes


@pytest.mark.parametrize(
    "model, data",
    [
        (["neg", "pos"], ["ABBR", "DESC"]),  # nothing in common
        (["neg", "neutral"], ["ne"]),  # ambiguous prefix
        (["neg", "pos"], ["neg", "pos", "mixed"]),  # a label the model does not know
    ],
)
def test_labels_that_do_not_match_say_how_to_rename(model, data):
    with pytest.raises(PipelineError, match=r"data\.label_names="):
        align_labels(model, data)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["data=sst2"], "needs model="),
        (["model=x.pt"], "needs model="),
        (["model=x.pt", "data=sst2", "splt=test"], "Did you mean 'split'"),
        (["model=x.pt", "data=sst2", "split=dev"], "use train, validation or test"),
        (["model=x.pt", "data=sst2", "batch_size=0"], ">= 1"),
        (["model=x.pt", "data=sst2", "batch_size=many"], "expected an integer"),
        (["model=x.pt", "data=sst2", "oops"], "key=value"),
    ],
)
def test_bad_arguments(argv, match):
    with pytest.raises(ConfigError, match=match):
        parse_args(argv)


def test_data_and_tracking_overrides_pass_through():
    args = parse_args(
        ["model=m", "data=mr", "data.max_eval_samples=5", "tracking.uri=http://h:1", "split=test"]
    )
    assert args.data_overrides == ["data.max_eval_samples=5"]
    assert args.tracking_overrides == {"uri": "http://h:1"}


QUICK = [
    "data=sst2",
    "data.max_train_samples=2000",
    "data.max_eval_samples=200",
    "trainer.max_epochs=1",
    "embedding.dim=16",
    "encoder.hidden_size=16",
    "tokenizer.vocab_size=2000",
    "optimizer.lr=0.01",
    "trainer.progress=none",
    "seed=7",
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
]


def pipeline(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_pipeline(*args, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir, hf_cache):
    import os

    cwd = tmp_path_factory.mktemp("evaluate")
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_DATASETS_CACHE": str(hf_cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = pipeline(cwd, env, *QUICK)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (best,) = cwd.glob("outputs/*/*/best.pt")
    return cwd, env, best


def runs(cwd: Path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sentiment")
    return client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])


def test_same_data_gives_the_training_runs_test_metrics(trained):
    """Evaluating on the training run's own test slice reproduces its test metrics exactly."""
    cwd, env, best = trained
    done = pipeline(cwd, env, "evaluate", f"model={best}", "data=sst2", *QUICK[2:3], "seed=7")
    assert done.returncode == 0, done.stderr[-2000:]
    source, evaluation = runs(cwd)[:2]
    for key in ("test/accuracy", "test/f1"):
        assert evaluation.data.metrics[key] == pytest.approx(source.data.metrics[key], abs=1e-9)
    assert evaluation.data.metrics["test/loss"] == pytest.approx(
        source.data.metrics["test/loss"], rel=1e-4
    )
    assert evaluation.data.tags["source_run_id"] == source.info.run_id
    assert source.info.run_id in evaluation.data.tags["mlflow.note.content"]
    assert evaluation.info.run_name == "eval-lstm-sst2-on-sst2"


def test_cross_domain_from_a_run_id_is_logged_as_a_new_run(trained):
    cwd, env, _ = trained
    source = runs(cwd)[0]
    done = pipeline(
        cwd, env, "evaluate", f"model={source.info.run_id}", "data=mr", "data.max_eval_samples=300"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test/accuracy" in done.stdout
    evaluation = runs(cwd)[-1]
    assert evaluation.info.status == "FINISHED"
    assert evaluation.data.tags["trained_on"] == "sst2" and evaluation.data.tags["data"] == "mr"
    assert evaluation.data.tags["source_run_id"] == source.info.run_id
    assert evaluation.data.params["examples"] == "300"
    assert 0.0 <= evaluation.data.metrics["test/accuracy"] <= 1.0
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    names = {a.path for a in client.list_artifacts(evaluation.info.run_id, "reports")}
    assert "reports/confusion_matrix.png" in names
    assert "reports/classification_report.txt" in names


def test_mismatched_labels_are_one_clear_error(trained):
    cwd, env, best = trained
    done = pipeline(cwd, env, "evaluate", f"model={best}", "data=trec", "tracking=none")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "do not match the model's" in done.stderr and "data.label_names=" in done.stderr


def reviews(path: Path, rows: int = 200) -> Path:
    """A labelled file of ``rows`` texts, half of each class (named as the model's, by prefix)."""
    texts = ["a gripping and moving film", "dull and far too long"]
    lines = ["text,label"] + [f"{texts[i % 2]} {i},{('pos', 'neg')[i % 2]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("key", ["data.train", "data.test"])
def test_a_file_named_alone_is_scored_whole_and_said_so(trained, key):
    """``data=files data.train=x.csv`` once scored a carved 10 % of x.csv without saying so."""
    cwd, env, best = trained
    path = reviews(cwd / "scored.csv")
    done = pipeline(
        cwd, env, "evaluate", f"model={best}", "data=files", f"{key}={path}", "tracking=none"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"all 200 rows of {path} (the whole file; nothing is carved)" in done.stdout
    assert "== evaluated 200 texts" in done.stdout


def test_a_split_without_its_file_among_several_is_refused(trained):
    cwd, env, best = trained
    train, test = reviews(cwd / "a.csv"), reviews(cwd / "b.csv")
    done = pipeline(
        cwd,
        env,
        "evaluate",
        f"model={best}",
        "data=files",
        f"data.train={train}",
        f"data.test={test}",
        "split=validation",
        "tracking=none",
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "data.validation is not set" in done.stderr and "carves nothing" in done.stderr


def test_a_carved_split_of_a_preset_is_said_to_be_carved():
    from types import SimpleNamespace

    from pipeline.inference.evaluate import what_is_scored

    data = SimpleNamespace(source="local:/d/trec", carved=["validation"])
    assert "carved (seeded) from train" in what_is_scored(545, "validation", None, data)
    assert "data=files data.test=<file>" in what_is_scored(545, "validation", None, data)
    assert "carved" not in what_is_scored(500, "test", None, data)
