"""Load a trained classifier from anywhere it was saved.

One loader for every consumer (``python -m pipeline predict``, ``evaluate``, tests): a
checkpoint file, a run's output folder, an MLflow run id, ``runs:/<id>/model`` or
``models:/<name>/<version|alias>`` all give the same
:class:`~pipeline.inference.classifier.TrainedClassifier`. MLflow is imported only for MLflow
references; a checkpoint needs torch alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import ConfigError, PipelineError
from pipeline.inference.classifier import TrainedClassifier, classifier_from_checkpoint

_RUN_ID = re.compile(r"[0-9a-f]{32}")


def load_classifier(reference: str | Path, tracking_uri: str = "") -> TrainedClassifier:
    """The classifier behind ``reference``: a checkpoint path (``best.pt``), a run's output
    directory, a local MLflow model directory, an MLflow run id, ``runs:/<id>/model`` or
    ``models:/<name>/<version|alias>``. ``tracking_uri`` picks the MLflow store (default:
    ``MLFLOW_TRACKING_URI``, else MLflow's own default)."""
    text = str(reference).strip()
    if not text:
        raise ConfigError(_REFERENCE_HELP.format(what="No model was given"))
    path = Path(text).expanduser()
    if ":/" not in text or path.exists():
        if path.is_dir():
            if (path / "MLmodel").is_file():
                return _from_mlflow(str(path.resolve()), tracking_uri)
            if (path / "best.pt").is_file():
                return classifier_from_checkpoint(path / "best.pt")
            raise PipelineError(
                f"{path} is a directory with neither a best.pt checkpoint nor an MLflow model "
                "(MLmodel) in it. Pass the checkpoint file, or a run's output directory."
            )
        if path.suffix == ".pt" or path.is_file():
            return classifier_from_checkpoint(path)
        if not _RUN_ID.fullmatch(text):
            raise PipelineError(_REFERENCE_HELP.format(what=f"'{text}' is not a file"))
    return _from_mlflow(text, tracking_uri)


_REFERENCE_HELP = (
    "{what}. Give model=<checkpoint path (outputs/<date>/<time>/best.pt) | MLflow run id "
    "(32 hex characters) | runs:/<run id>/model | models:/<name>/<version or alias>>."
)


def _from_mlflow(reference: str, tracking_uri: str) -> TrainedClassifier:
    """Load an MLflow pyfunc model logged by this pipeline and return its classifier."""
    import mlflow

    from pipeline.inference.pyfunc_model import TextClassifierModel
    from pipeline.tracking.tracker import quiet_mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    store = mlflow.get_tracking_uri()
    if store.startswith("sqlite:///") and not Path(reference).is_dir():
        database = Path(store[len("sqlite:///") :])
        if not database.is_file():  # MLflow would create an empty store there, then fail
            raise PipelineError(
                f"There is no MLflow store at {store} to find {reference} in. Run predict "
                "where you trained (its mlflow.db), set tracking_uri=sqlite:///<path to "
                "mlflow.db> or http://<server>, or pass the run's checkpoint (best.pt)."
            )
    uri = (
        reference if (":/" in reference or Path(reference).is_dir()) else f"runs:/{reference}/model"
    )
    try:
        with quiet_mlflow():
            loaded = mlflow.pyfunc.load_model(uri)
    except PipelineError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise PipelineError(
            f"Cannot load the model {uri} from MLflow at {mlflow.get_tracking_uri()} "
            f"({type(exc).__name__}: {reason}). Check the run id or model name and version, "
            "set tracking_uri=... (or MLFLOW_TRACKING_URI) to the store that holds it, or "
            "pass the run's checkpoint (best.pt) instead."
        ) from None
    try:
        wrapped = loaded.unwrap_python_model()
    except Exception:
        wrapped = None
    if not isinstance(wrapped, TextClassifierModel) or wrapped.classifier is None:
        flavors = ", ".join(sorted(loaded.metadata.flavors)) or "none"
        raise PipelineError(
            f"{uri} is not a text classifier logged by this pipeline (its flavors: {flavors}). "
            "Language models are sampled with python -m pipeline generate; a classifier "
            "logged before models were logged as pyfunc loads from its checkpoint (best.pt)."
        )
    classifier = wrapped.classifier
    classifier.run_id = loaded.metadata.run_id
    return classifier
