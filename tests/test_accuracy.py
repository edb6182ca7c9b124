"""Published-baseline accuracy with the default settings, on the full data sets.

Slow (minutes each on 2 CPU cores): deselected by default, run with `pytest -m slow`.
"""

from __future__ import annotations

import os

import pytest

from tests.cli import run_pipeline

pytestmark = pytest.mark.slow

#: (overrides, metric, bound): seed 42 with the defaults, a little under what it reached
#: (IMDb 0.894, SST-2 0.862, TREC 0.918, PTB test perplexity 97.2 in 47 min).
TARGETS = [
    (["task=sentiment"], "test/accuracy", 0.89),  # IMDb, 22.5k train / 25k test, BiLSTM
    (["task=sentiment", "data=sst2"], "test/accuracy", 0.855),
    (["task=topic", "data=trec"], "test/accuracy", 0.91),
    (["experiment=ptb_cpu"], "test/perplexity", 100.0),  # at most: lower is better
]


@pytest.mark.parametrize(
    "overrides, metric, bound", TARGETS, ids=[" ".join(o) for o, _, _ in TARGETS]
)
def test_default_settings_reach_the_target(overrides, metric, bound, data_dir, tmp_path):
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    done = run_pipeline(*overrides, cwd=tmp_path, env=env, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    value = run.data.metrics[metric]
    print(f"{' '.join(overrides)}: {metric} {value:.4f}")
    assert value <= bound if metric.endswith("perplexity") else value >= bound
