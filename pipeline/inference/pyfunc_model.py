"""Trained models as MLflow pyfunc models: raw strings in, labels (or text) out.

``mlflow.pyfunc.load_model(uri).predict(...)`` and ``mlflow models serve`` reach the same
:class:`~pipeline.inference.classifier.TrainedClassifier` as ``python -m pipeline predict``.

Classifier input: a table with a string column ``text`` (the signature's one named column;
other columns are ignored): a DataFrame, or served (``mlflow models serve``) ``POST
/invocations`` with ``dataframe_records`` (``[{"text": ...}, ...]``), ``dataframe_split``
or ``{"inputs": {"text": [...]}}``. A payload without a ``text`` column, or with a text
that is not a string (null, a number, a boolean), is refused: an ``MlflowException``
(INVALID_PARAMETER_VALUE), which the server answers with HTTP 400 and the message. Output:
a DataFrame with ``label`` (str) and one float column ``p_<label>`` per class, the class
probabilities (they sum to 1); served: ``{"predictions": [{"label": ..., ...}, ...]}``.
Models logged before the column was named take any one column (MLflow passes them only
the first): re-log them to get the check.

The model directory holds a slim copy of the checkpoint (weights, config, labels; no
optimizer state) and the tokenizer folder as artifacts, and is logged "from code" (a
two-line file that names :class:`TextClassifierModel`), so nothing is pickled. MLflow runs
that file when it loads the model (``mlflow.pyfunc.load_model``, ``mlflow models serve``):
serving trusts the stored model. ``python -m pipeline predict`` and ``generate`` never
run it: they rebuild the model from the artifacts (``pipeline.inference.stored``). The
model loads where seqpipe is installed (``--env-manager local``); its
``requirements.txt`` pins the third-party packages it imports, listed explicitly because
inferring them costs seconds per run. A language model (``task=lm``) is logged the same
way (:class:`LanguageModelPyfunc`: a ``prompt`` column in, a ``text`` column out), and so is
a tagger (``pipeline.inference.tagger_pyfunc``: ``text`` in, ``tokens`` and ``tags`` out).
"""

from __future__ import annotations

import re
import tempfile
import time
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException

from pipeline.errors import PipelineError
from pipeline.inference.classifier import LABEL_COLUMN, PROBABILITY_PREFIX, TEXT_COLUMN, as_texts
from pipeline.tracking.extras import quiet_mlflow
from pipeline.tracking.tracker import RESULT_STEP

MODEL_NAME = "model"  # the logged model's name outside a named run (runs:/<run id>/model)
#: What MLflow refuses in a logged model's name (``lr=0.01`` becomes ``lr=0_01``).
NAME_FORBIDS = re.compile(r"[/:.%\"']")
INPUT_EXAMPLE = ["a gripping, beautifully acted film", "dull, slow and far too long"]
#: Distributions the model imports when it loads, pinned to the versions that logged it.
REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "hydra-core", "omegaconf", "tokenizers")
#: The model's code, run by MLflow when it loads the model (models from code).
MODEL_CODE = """\
import mlflow.models

from {module} import {name}

mlflow.models.set_model({name}())
"""
PROMPT_COLUMN = "prompt"  # a language model's input column
#: A language model's sampling settings, passed as ``params`` (served: ``"params": {...}``).
SAMPLING = {"max_tokens": ("long", 200), "temperature": ("double", 0.8)}
SAMPLING |= {"top_k": ("long", 0), "seed": ("long", 0)}


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
        A text that is not a string is refused, naming its row (HTTP 400 when served).
        """
        return self.classifier.predict(input_texts(model_input, TEXT_COLUMN))


class LanguageModelPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a language model: a ``prompt`` column in, a ``text`` column out
    (each prompt continued by sampling; ``params``: :data:`SAMPLING`)."""

    def __init__(self) -> None:
        self.model = self.tokenizer = None  # set by load_context, from the artifacts

    def load_context(self, context: Any) -> None:
        from pipeline.inference.generate import generator_from_checkpoint

        self.model, self.tokenizer = generator_from_checkpoint(
            context.artifacts["checkpoint"], context.artifacts["tokenizer"]
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        """Prompts -> DataFrame of ``text``: each prompt and what the model wrote after it."""
        from pipeline.model.sampling import sample

        settings = {name: default for name, (_, default) in SAMPLING.items()}
        settings |= {k: v for k, v in (params or {}).items() if k in SAMPLING}
        prompts = input_texts(model_input, PROMPT_COLUMN)
        texts = [sample(self.model, self.tokenizer, p, **settings) for p in prompts]
        return pd.DataFrame({TEXT_COLUMN: texts})


def input_texts(model_input: Any, column: str) -> list[str]:
    """The strings of ``column``; anything else is MLflow's bad-input error (HTTP 400)."""
    try:
        return as_texts(model_input, column)
    except PipelineError as exc:
        raise MlflowException.invalid_parameter_value(str(exc)) from None


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
    """One string column ``text`` in; ``label`` and a double ``p_<label>`` per class out.

    The input column is named: MLflow then refuses a payload without it (HTTP 400 naming
    it) and drops other columns, instead of passing on whichever column comes first."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", LABEL_COLUMN)]
    outputs += [ColSpec("double", f"{PROBABILITY_PREFIX}{label}") for label in labels]
    return ModelSignature(inputs=Schema([ColSpec("string", TEXT_COLUMN)]), outputs=Schema(outputs))


def lm_signature() -> Any:
    """One string column ``prompt`` in, one ``text`` out; the sampling settings as params."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    params = ParamSchema([ParamSpec(k, kind, default) for k, (kind, default) in SAMPLING.items()])
    return ModelSignature(
        inputs=Schema([ColSpec("string", PROMPT_COLUMN)]),
        outputs=Schema([ColSpec("string", TEXT_COLUMN)]),
        params=params,
    )


def slim_checkpoint(checkpoint: Path, path: Path) -> Path:
    """Copy of ``checkpoint`` at ``path`` without optimizer state or history, for serving."""

    from pipeline.model.checkpoint import Checkpoint

    return Checkpoint.load(checkpoint).for_serving().save(path)


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
    labels = [str(label) for label in labels]
    return log_pyfunc_model(
        getattr(mlflow_module_or_tracker, "mlflow", mlflow_module_or_tracker),
        "TextClassifierModel",
        ("classifier.pt", Path(checkpoint), Path(tokenizer_dir)),
        signature=signature(labels),
        input_example=pd.DataFrame({TEXT_COLUMN: INPUT_EXAMPLE}),
        metadata={"labels": labels, "task_kind": "classification"},
        register_as=register_as,
    )


def log_language_model(
    mlflow: Any, checkpoint: Path, tokenizer_dir: Path, register_as: str | None = None
) -> Any:
    """Log a language model as ``model``: weights, config and tokenizer, no pickled module,
    so ``generate model=<run id>`` rebuilds it with the installed package's classes."""
    return log_pyfunc_model(
        mlflow,
        "LanguageModelPyfunc",
        ("language_model.pt", Path(checkpoint), Path(tokenizer_dir)),
        signature=lm_signature(),
        input_example=None,  # checking one would sample text at every run's end
        metadata={"task_kind": "lm"},
        register_as=register_as,
    )


def logged_model_name(mlflow: Any) -> str:
    """The active run's name as a model name (``lstm-h128-sst2-3f9a``), so that the models
    of a store tell apart; ``model`` outside a named run."""
    active = mlflow.active_run()
    run_name = active.info.run_name if active is not None else None
    return NAME_FORBIDS.sub("_", run_name) if run_name else MODEL_NAME


def log_pyfunc_model(
    mlflow: Any,
    class_name: str,
    files: tuple[str, Path, Path],
    register_as: str | None = None,
    module: str = __name__,
    **options: Any,
) -> Any:
    """Log a model from code (the class ``class_name`` of ``module``) with a slim checkpoint
    and the tokenizer folder as artifacts (``files``: the slim checkpoint's name, the
    checkpoint, the tokenizer folder), print where it went and return MLflow's ``ModelInfo``."""
    from pipeline import __version__

    name, checkpoint, tokenizer_dir = files
    model_name = logged_model_name(mlflow)
    options["metadata"] = {**options["metadata"], "seqpipe_version": __version__}
    started = time.perf_counter()
    quiet = warnings.catch_warnings()
    with tempfile.TemporaryDirectory(prefix="model-") as tmp, quiet_mlflow(), quiet:
        warnings.filterwarnings("ignore", "An input example was not provided")
        code = Path(tmp) / "model_code.py"
        code.write_text(MODEL_CODE.format(module=module, name=class_name))
        info = mlflow.pyfunc.log_model(
            name=model_name,
            python_model=str(code),
            artifacts={
                "checkpoint": str(slim_checkpoint(checkpoint, Path(tmp) / name)),
                "tokenizer": str(tokenizer_dir),
            },
            pip_requirements=requirements(),
            registered_model_name=register_as or None,
            step=RESULT_STEP,  # links the run's results (test/*, best/val/*) to the model
            **options,
        )
    seconds = time.perf_counter() - started
    where = f"runs:/{info.run_id}/{model_name}"
    if register_as:
        where += f", registered as models:/{register_as}/{info.registered_model_version}"
    print(f"model: logged {where} in {seconds:.1f}s", flush=True)
    return info
