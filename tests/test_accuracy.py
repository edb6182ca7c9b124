"""Published-baseline accuracy with the default settings, on the full data sets.

Slow (minutes each on 2 CPU cores): deselected by default, run with `pytest -m slow`.
"""

from __future__ import annotations

import os

import pytest

from tests.cli import run_pipeline

pytestmark = pytest.mark.slow

TARGETS = [
    (["task=sentiment"], 0.87),  # IMDb, 25k train / 25k test
    (["task=sentiment", "data=sst2"], 0.83),
    (["task=topic", "data=trec"], 0.88),
]


@pytest.mark.parametrize("overrides, target", TARGETS, ids=[" ".join(o) for o, _ in TARGETS])
def test_default_settings_reach_the_target(overrides, target, data_dir, tmp_path):
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    done = run_pipeline(*overrides, cwd=tmp_path, env=env, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    accuracy = run.data.metrics["test/accuracy"]
    print(f"{' '.join(overrides)}: test/accuracy {accuracy:.4f}")
    assert accuracy >= target
