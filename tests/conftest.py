"""Shared test fixtures: the real data sets in ../shared/data, one MLflow store per session,
and the plugins loaded exactly as `python -m pipeline` loads them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The project's own caches (trained word vectors, held-out filters) go to a folder of this
# session, never the user's ~/.cache/seqpipe: no test reads what another run left there.
_CACHE = tempfile.mkdtemp(prefix="seqpipe-tests-")
os.environ["SEQPIPE_CACHE"] = _CACHE


def pytest_configure(config: pytest.Config) -> None:
    from pipeline.config.schemas import register_core_configs
    from pipeline.plugins import load_plugins

    load_plugins()
    register_core_configs()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (SHARED_DATA / "SOURCES.md").is_file():
        pytest.fail(f"The shared data sets are missing: expected them in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the whole session (its first use runs migrations, ~2 s)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf_cache")
