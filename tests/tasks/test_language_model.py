"""`task=lm` end to end on slices of the real corpora, then `generate` from what it trained."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_pipeline

TINY = [
    "trainer.max_epochs=2",
    "encoder.hidden_size=24",
    "embedding.dim=16",
    "trainer.progress=none",
    "task.sample_tokens=30",
    "seed=3",
]


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_pipeline(*args, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def lm_env(tmp_path_factory, data_dir, hf_cache) -> tuple[Path, dict[str, str]]:
    cwd = tmp_path_factory.mktemp("lm")
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_DATASETS_CACHE": str(hf_cache)}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return cwd, env


@pytest.fixture(scope="module")
def char_run(lm_env) -> subprocess.CompletedProcess:
    cwd, env = lm_env
    done = cli(cwd, env, "task=lm", "data.max_train_lines=600", *TINY)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def the_run(cwd: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lm")
    (run,) = client.search_runs(
        [experiment.experiment_id], max_results=1, order_by=["start_time DESC"]
    )
    return client, run


def test_a_char_model_trains_and_is_recorded(char_run, lm_env):
    cwd, _ = lm_env
    client, run = the_run(cwd)
    assert run.info.status == "FINISHED"
    for name in (
        "train/loss",
        "train/perplexity",
        "val/perplexity",
        "val/bpc",
        "train/tokens_per_s",
    ):
        assert name in run.data.metrics, name
    history = client.get_metric_history(run.info.run_id, "val/perplexity")
    assert len(history) == 2
    assert run.data.metrics["val/perplexity"] < 29  # better than uniform over the vocabulary
    assert run.data.tags["task"] == "lm" and run.data.params["tokenizer"] == "char"
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert samples == {"samples/epoch_001.txt", "samples/epoch_002.txt"}
    assert "sample (best checkpoint" in char_run.stdout


def test_generation_is_reproducible_under_a_seed(char_run, lm_env):
    cwd, env = lm_env
    (best,) = cwd.glob("outputs/*/*/best.pt")
    args = ["generate", f"model={best}", "prompt=the time traveller", "max_tokens=40"]
    first = cli(cwd, env, *args, "seed=1")
    again = cli(cwd, env, *args, "seed=1")
    other = cli(cwd, env, *args, "seed=2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout == again.stdout != other.stdout
    assert first.stdout.startswith("the time traveller")
    assert len(first.stdout.rstrip("\n")) == len("the time traveller") + 40  # one char a token


def test_generation_from_the_mlflow_run_id_matches_the_checkpoint(char_run, lm_env):
    cwd, env = lm_env
    _, run = the_run(cwd)
    (best,) = cwd.glob("outputs/*/*/best.pt")
    args = ["prompt=the", "max_tokens=25", "seed=4", "top_k=5"]
    from_run = cli(cwd, env, "generate", f"model={run.info.run_id}", *args)
    from_file = cli(cwd, env, "generate", f"model={best}", *args)
    assert from_run.returncode == 0, from_run.stderr[-2000:]
    assert from_run.stdout == from_file.stdout


def test_a_word_model_on_ptb_reports_test_perplexity(lm_env):
    cwd, env = lm_env
    done = cli(
        cwd,
        env,
        "experiment=ptb_small",
        "data.max_train_lines=400",
        "data.max_eval_lines=100",
        "trainer.max_epochs=1",
        "encoder.hidden_size=16",
        "embedding.dim=16",
        "encoder.num_layers=1",
        "tracking=none",
        "trainer.progress=none",
        "task.sample_tokens=5",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "test: perplexity" in done.stdout and "test/perplexity" in done.stdout
    assert "(words)" in done.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["task=lm", "encoder=transformer"], ["encoder=transformer is not causal", "lstm"]),
        (["task=lm", "encoder.bidirectional=true"], ["is not causal"]),
        (
            ["task=lm", "data=imdb"],
            ["data=imdb is a labelled data set", "data.as_corpus=train", "timemachine"],
        ),
        (["task=sentiment", "data=ptb"], ["data=ptb is a text corpus", "task=lm"]),
        (
            ["task=sentiment", "data.as_corpus=train", "data.reverse=true"],
            ["data.as_corpus, data.reverse only shape a language model", "model.init_from"],
        ),
        (["task=lm", "data.max_trian_lines=3"], ["data.max_trian_lines", "max_train_lines"]),
    ],
)
def test_language_model_mistakes_are_one_short_message(args, words, lm_env):
    cwd, env = lm_env
    done = cli(cwd, env, *args, "tracking=none", "trainer.max_epochs=1")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)


def test_generate_argument_errors(lm_env):
    cwd, env = lm_env
    done = cli(cwd, env, "generate", "prompt=x")
    assert done.returncode != 0 and "needs model=" in done.stderr
    done = cli(cwd, env, "generate", "model=x.pt", "temprature=2")
    assert done.returncode != 0 and "Did you mean 'temperature'" in done.stderr
