"""The trained classifier as an MLflow pyfunc model: raw strings in, labels out.

``mlflow.pyfunc.load_model(uri).predict(...)``, ``mlflow models serve`` and ``python -m
pipeline predict`` all reach the same :class:`~pipeline.inference.classifier.TrainedClassifier`.

Input: a list of strings (the signature: one unnamed string column), a single string, a
pandas Series, or a DataFrame whose ``text`` column (or only column) holds the texts.
Output: a DataFrame with ``label`` (str) and one float column ``p_<label>`` per class,
the class probabilities (they sum to 1). Served (``mlflow models serve``), ``POST
/invocations`` takes ``{"inputs": [...]}``, ``dataframe_split`` or ``dataframe_records``
and answers ``{"predictions": [{"label": ..., "p_<label>": ...}, ...]}``.

The model directory holds a slim copy of the checkpoint (weights, config, labels; no
optimizer state) and the tokenizer folder as artifacts, and is logged "from code" (a
two-line file that names :class:`TextClassifierModel`), so nothing is pickled. That code
is this package: the model loads where seqpipe is installed (``mlflow models serve
--env-manager local``); its ``requirements.txt`` pins the third-party packages it
imports, listed explicitly because inferring them costs seconds per run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from pipeline.inference.classifier import LABEL_COLUMN, PROBABILITY_PREFIX, as_texts
from pipeline.tracking.tracker import quiet_mlflow

MODEL_NAME = "model"  # the logged model's name: runs:/<run id>/model
INPUT_EXAMPLE = ["a gripping, beautifully acted film", "dull, slow and far too long"]
#: Distributions the model imports when it loads, pinned to the versions that logged it.
REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "hydra-core", "omegaconf", "tokenizers")
#: The model's code, run by MLflow when it loads the model (models from code).
MODEL_CODE = """\
import mlflow.models

from pipeline.inference.pyfunc_model import TextClassifierModel

mlflow.models.set_model(TextClassifierModel())
"""


class TextClassifierModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: ``load_context`` rebuilds the classifier from the model's artifacts."""

    def __init__(self) -> None:
        self.classifier = None  # set by load_context, from the model's artifacts

    def load_context(self, context: Any) -> None:
        from pipeline.inference.classifier import classifier_from_checkpoint

        self.classifier = classifier_from_checkpoint(
            context.artifacts["checkpoint"], tokenizer_dir=context.artifacts["tokenizer"]
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        """Raw texts -> DataFrame of ``label`` and ``p_<label>`` per class.

        MLflow reads the ``model_input`` hint: ``pd.DataFrame`` keeps it from inferring a
        signature from it (the logged one is used) and from warning about a missing hint.
        In practice any input :func:`~pipeline.inference.classifier.as_texts` accepts works here.
        """
        return self.classifier.predict(as_texts(model_input))


def requirements() -> list[str]:
    """``name==version`` for each of :data:`REQUIREMENTS` installed here."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def signature(labels: Sequence[str]) -> Any:
    """One string column ``text`` in; ``label`` and a double ``p_<label>`` per class out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", LABEL_COLUMN)]
    outputs += [ColSpec("double", f"{PROBABILITY_PREFIX}{label}") for label in labels]
    return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema(outputs))


def slim_checkpoint(checkpoint: Path, directory: Path) -> Path:
    """Copy of ``checkpoint`` without optimizer state or history, for serving."""

    from pipeline.model.checkpoint import Checkpoint

    return Checkpoint.load(checkpoint).for_serving().save(directory / "classifier.pt")


def log_classifier_model(
    mlflow_module_or_tracker: Any,
    checkpoint: Path,
    tokenizer_dir: Path,
    labels: Sequence[str],
    register_as: str | None = None,
) -> Any:
    """Log the classifier to the active MLflow run as ``model``; register it if asked.

    Returns MLflow's ``ModelInfo`` (``model_uri``, ``registered_model_version``, ...).
    """
    mlflow = getattr(mlflow_module_or_tracker, "mlflow", mlflow_module_or_tracker)
    from pipeline import __version__

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="classifier-") as tmp, quiet_mlflow():
        code = Path(tmp) / "text_classifier.py"
        code.write_text(MODEL_CODE)
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(code),
            artifacts={
                "checkpoint": str(slim_checkpoint(Path(checkpoint), Path(tmp))),
                "tokenizer": str(tokenizer_dir),
            },
            signature=signature([str(label) for label in labels]),
            input_example=list(INPUT_EXAMPLE),
            pip_requirements=requirements(),
            metadata={"labels": [str(label) for label in labels], "seqpipe_version": __version__},
            registered_model_name=register_as or None,
        )
    seconds = time.perf_counter() - started
    where = f"runs:/{info.run_id}/{MODEL_NAME}"
    if register_as:
        where += f", registered as models:/{register_as}/{info.registered_model_version}"
    print(f"model: logged {where} in {seconds:.1f}s", flush=True)
    return info
