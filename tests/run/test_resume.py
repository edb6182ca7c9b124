"""Kill a real training process mid-epoch, resume it, and get exactly the metrics of a run
that was never interrupted (CPU)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from pipeline.run.resume import config_differences
from tests.cli import run_pipeline, start_pipeline

CLASSIFIER = [
    "data=sst2",
    "data.max_train_samples=2000",
    "data.max_eval_samples=200",
    "trainer.max_epochs=3",
    "trainer.patience=0",
    "trainer.batch_size=32",
    "embedding.dim=16",
    "embedding.dropout=0.3",  # dropout draws random numbers: they must be restored too
    "encoder.hidden_size=16",
    "tokenizer.vocab_size=2000",
    "optimizer.lr=0.01",
    "optimizer.plateau_factor=0.5",
    "tracking.log_model=false",
    "trainer.progress=log",
    "trainer.log_every_n_steps=5",
    "seed=3",
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
]
LANGUAGE_MODEL = [
    "task=lm",
    "data=timemachine",
    "data.max_train_lines=1200",
    "trainer.max_epochs=2",
    "embedding.dim=16",
    "embedding.dropout=0.2",
    "encoder.hidden_size=32",
    "task.sample_tokens=20",
    "tracking.log_model=false",
    "trainer.progress=log",
    "trainer.log_every_n_steps=5",
]


def test_config_differences_ignore_what_does_not_change_the_result():
    saved = {"encoder": {"hidden_size": 8}, "trainer": {"resume": None, "progress": "bar"}}
    same = {"encoder": {"hidden_size": 8}, "trainer": {"resume": "auto", "progress": "log"}}
    assert config_differences(saved, same) == []
    other = {"encoder": {"hidden_size": 9}, "trainer": {"resume": "auto"}}
    assert config_differences(saved, other) == ["encoder.hidden_size: 8 -> 9"]


def test_a_run_may_go_on_on_another_device_or_compiled_differently():
    """A run stopped on a GPU machine may go on on the CPU (or compiled, or not): neither
    changes what is computed (issue 14)."""
    saved = {"trainer": {"device": "cuda", "compile": True, "batch_size": 32}}
    current = {"trainer": {"device": "cpu", "compile": False, "batch_size": 32}}
    assert config_differences(saved, current) == []


def test_a_setting_added_since_the_checkpoint_may_be_absent_when_at_its_default():
    """A ``last.pt`` from an older version lacks settings added since (``trainer.amp_dtype``,
    an encoder option): left at the schema's default they are no difference; set otherwise
    they are."""
    saved = {"trainer": {"batch_size": 32}, "encoder": {"name": "lstm", "hidden_size": 8}}
    current = {
        "trainer": {"batch_size": 32, "amp_dtype": "auto"},
        "encoder": {"name": "lstm", "hidden_size": 8, "bidirectional": False},
    }
    assert config_differences(saved, current) == []
    current["trainer"]["amp_dtype"] = "fp16"
    current["encoder"]["bidirectional"] = True
    assert config_differences(saved, current) == [
        "encoder.bidirectional: <absent> -> True",
        "trainer.amp_dtype: <absent> -> fp16",
    ]
    assert "extra.x: <absent> -> 1" in config_differences(saved, current | {"extra": {"x": 1}})


@pytest.fixture
def env(data_dir, hf_cache) -> dict[str, str]:
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_DATASETS_CACHE": str(hf_cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run(cwd: Path, env: dict, args: list[str]) -> subprocess.CompletedProcess:
    done = run_pipeline(*args, cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def interrupt(cwd: Path, env: dict, args: list[str], when: str, signum: int):
    """Start a training, send ``signum`` once a line starts with ``when``; return the result."""
    process = start_pipeline(*args, cwd=cwd, env=env)  # progress lines (stderr) merged
    sent = False
    out = []
    for line in process.stdout:
        out.append(line)
        if not sent and line.startswith(when):
            process.send_signal(signum)
            sent = True
    code = process.wait(timeout=300)
    assert sent, "".join(out)[-2000:]
    return code, "".join(out)


def history(cwd: Path, experiment: str) -> tuple[object, dict[str, list[float]]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    curves = {
        key: [
            m.value
            for m in sorted(client.get_metric_history(found.info.run_id, key), key=lambda m: m.step)
        ]
        for key in found.data.metrics
        if not key.startswith("train/") or key in ("train/loss", "train/perplexity")
    }
    return found, curves


def resume_from_message(err: str) -> list[str]:
    command = err.split("Resume with:\n", 1)[1].strip().splitlines()[0]
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "pipeline"]
    return words[3:]


def test_sigint_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, env):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir(), broken.mkdir()
    run(straight, env, CLASSIFIER)
    _, expected = history(straight, "sentiment")

    code, err = interrupt(broken, env, CLASSIFIER, "epoch 2/3 step 10/", signal.SIGINT)
    assert code == 130, err[-2000:]
    assert "Traceback" not in err
    assert "stopped: Interrupted (SIGINT) in epoch 2 after step" in err
    killed, partial = history(broken, "sentiment")
    assert killed.info.status == "KILLED"
    assert len(partial["val/accuracy"]) == 1  # only epoch 1 was logged
    (last,) = broken.glob("outputs/*/*/last.pt")
    assert f"trainer.resume={last}" in err

    resumed = run(broken, env, resume_from_message(err))
    assert f"resume: {last} (epoch 2, step" in resumed.stdout
    finished, curves = history(broken, "sentiment")
    assert finished.info.run_id == killed.info.run_id  # the same MLflow run goes on
    assert finished.info.status == "FINISHED"
    assert curves == expected  # every per-epoch and test metric, exactly


# AWD-LSTM's regularisers: their masks and window lengths must come back on resume too.
REGULARISED = [
    "trainer.bptt_jitter=5",
    "encoder.weight_dropout=0.3",
    "encoder.locked_dropout=0.2",
    "embedding.dropout_kind=locked",
    "embedding.token_dropout=0.1",
    "trainer.ar_alpha=1",
    "trainer.tar_beta=1",
]


@pytest.mark.parametrize("extra", [[], REGULARISED], ids=["plain", "regularised"])
def test_sigterm_then_auto_resume_of_a_language_model_is_exact(tmp_path, env, extra):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir(), broken.mkdir()
    args = [*LANGUAGE_MODEL, *extra]
    run(straight, env, args)
    _, expected = history(straight, "lm")

    code, err = interrupt(broken, env, args, "epoch 1/2 step 10/", signal.SIGTERM)
    assert code == 143, err[-2000:]
    assert "stopped: Interrupted (SIGTERM) in epoch 1 after window" in err
    assert history(broken, "lm")[0].info.status == "KILLED"

    run(broken, env, [*args, "trainer.resume=auto"])
    finished, curves = history(broken, "lm")
    assert finished.info.status == "FINISHED"
    assert curves == expected


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path, env):
    run(tmp_path, env, [*CLASSIFIER, "trainer.max_epochs=1"])
    (last,) = tmp_path.glob("outputs/*/*/last.pt")
    done = run_pipeline(
        *CLASSIFIER,
        "encoder.hidden_size=24",
        f"trainer.resume={last}",
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "another config (encoder.hidden_size: 16 -> 24" in done.stderr
    # a finished run is not resumed, but may be trained longer
    again = run_pipeline(
        *CLASSIFIER,
        "trainer.max_epochs=1",
        f"trainer.resume={last}",
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert again.returncode != 0 and "already finished" in again.stderr
