"""What the MLflow tracker needs beside its calls: MLflow's entity of a data set input, whether
system metrics can be measured here, and a quiet console while MLflow loads a model."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


def system_metrics_available() -> bool:
    """MLflow measures CPU, memory, disk, network (and GPU) with ``psutil``: on where it is
    importable, off (quietly) where not, since MLflow would refuse to start the run."""
    return importlib.util.find_spec("psutil") is not None


@dataclass(frozen=True)
class DatasetRef:
    """A data set a run used, as MLflow records an input: by name and digest."""

    name: str
    digest: str
    source_type: str  # "hugging_face", "local"
    source: str  # JSON: where it came from
    context: str  # the split: train, validation, test
    profile: dict[str, Any] | None = None  # rows, labels


def dataset_input(ref: DatasetRef) -> Any:
    """MLflow's ``DatasetInput``: a data set by name and digest, tagged with its context."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = Dataset(
        name=ref.name,
        digest=ref.digest,
        source_type=ref.source_type,
        source=ref.source,
        profile=json.dumps(ref.profile) if ref.profile else None,
    )
    return DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, ref.context)])


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """No "Downloading artifacts" bars nor pyfunc INFO lines while MLflow loads a model
    (also when log_model checks the input example on it): the console is for our output."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    previous = os.environ.get(name)
    os.environ[name] = "false"
    logger = logging.getLogger("mlflow.pyfunc")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
