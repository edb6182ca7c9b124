"""Load a trained classifier (or tagger) from anywhere it was saved.

One loader for every consumer (``python -m pipeline predict``, ``evaluate``, tests): a
checkpoint file, a run's output folder, an MLflow run id, ``runs:/<id>/<model name>`` or
``models:/<name>/<version|alias>`` all give the same
:class:`~pipeline.inference.classifier.TrainedClassifier`; :func:`load_predictor` gives a
:class:`~pipeline.inference.tagger.TrainedTagger` instead where the checkpoint's task kind
predicts tags. MLflow is imported only for MLflow
references; a checkpoint needs torch alone. Nothing stored with a model runs: weights load
with ``weights_only`` and this package builds the model (``pipeline.inference.stored``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import tasks
from pipeline.errors import ConfigError, PipelineError
from pipeline.inference.classifier import TrainedClassifier, classifier_from_checkpoint
from pipeline.inference.stored import RUN_ID
from pipeline.inference.tagger import TrainedTagger, tagger_from_checkpoint

#: Builds a model from (checkpoint, tokenizer folder or None).
FromCheckpoint = Callable[[Path, Any], Any]


def load_classifier(reference: str | Path, tracking_uri: str = "") -> TrainedClassifier:
    """The classifier behind ``reference``: a checkpoint path (``best.pt``), a run's output
    directory, a local MLflow model directory, an MLflow run id, ``runs:/<id>/<model name>`` or
    ``models:/<name>/<version|alias>``. ``tracking_uri`` picks the MLflow store (default:
    ``MLFLOW_TRACKING_URI``, else MLflow's own default)."""
    return _load(reference, tracking_uri, classifier_from_checkpoint)


def load_predictor(
    reference: str | Path, tracking_uri: str = ""
) -> TrainedClassifier | TrainedTagger:
    """The classifier or tagger behind ``reference`` (as :func:`load_classifier`), by what
    its checkpoint's task kind predicts (``labels`` or ``tags``); other kinds are refused
    with the sub-command that uses them."""
    return _load(reference, tracking_uri, predictor_from_checkpoint)


def predictor_from_checkpoint(path: Path, tokenizer_dir: Any = None) -> Any:
    """A tagger where the checkpoint's kind predicts tags, else a classifier (which refuses
    every other kind, naming its sub-command)."""
    from pipeline.model.checkpoint import Checkpoint

    if tasks.kind(Checkpoint.load(path, what="classifier").kind).predicts == "tags":
        return tagger_from_checkpoint(path, tokenizer_dir)
    return classifier_from_checkpoint(path, tokenizer_dir)


def load_with(reference: str | Path, tracking_uri: str, build: FromCheckpoint) -> Any:
    """What ``build`` makes of the checkpoint and tokenizer folder (None: the one the
    checkpoint records) that ``reference`` names, wherever it is (``inspect`` builds its own)."""
    return _load(reference, tracking_uri, build)


def _load(reference: str | Path, tracking_uri: str, build: FromCheckpoint) -> Any:
    """What ``build`` makes of the checkpoint (and tokenizer) that ``reference`` names."""
    text = str(reference).strip()
    if not text:
        raise ConfigError(_REFERENCE_HELP.format(what="No model was given"))
    path = Path(text).expanduser()
    if ":/" not in text or path.exists():
        if path.is_dir():
            if (path / "MLmodel").is_file():
                return _from_mlflow(str(path.resolve()), tracking_uri, build)
            if (path / "best.pt").is_file():
                return build(path / "best.pt", None)
            raise PipelineError(
                f"{path} is a directory with neither a best.pt checkpoint nor an MLflow model "
                "(MLmodel) in it. Pass the checkpoint file, or a run's output directory."
            )
        if path.suffix == ".pt" or path.is_file():
            return build(path, None)
        if not RUN_ID.fullmatch(text):
            raise PipelineError(_REFERENCE_HELP.format(what=f"'{text}' is not a file"))
    return _from_mlflow(text, tracking_uri, build)


_REFERENCE_HELP = (
    "{what}. Give model=<checkpoint path (outputs/<date>/<time>/best.pt) | MLflow run id "
    "(32 hex characters) | runs:/<run id>/<model name> | models:/<name>/<version or alias>>."
)


def _from_mlflow(reference: str, tracking_uri: str, build: FromCheckpoint) -> Any:
    """The model of an MLflow model logged by this pipeline, rebuilt from its checkpoint
    and tokenizer artifacts by this package: the code stored with the model is not run."""
    from pipeline.inference.stored import open_stored_model

    usage = (
        "Pass a classifier's or tagger's run id or its checkpoint (best.pt); language models "
        "are sampled with python -m pipeline generate."
    )
    with open_stored_model(reference, tracking_uri, usage) as stored, stored.named_in_errors():
        model = build(stored.checkpoint, stored.tokenizer)
    model.run_id = stored.run_id or model.run_id
    return model
