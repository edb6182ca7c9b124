"""Models stored in MLflow, opened without running anything stored with them.

``mlflow.pyfunc.load_model`` runs the model's code file from the store (and a pickled
PyTorch model runs whatever its pickle names): anyone who can write to the store could
run code on the machine that loads it. ``predict`` and ``generate`` instead download the
model's files, read its ``MLmodel`` (YAML) and take the two artifacts this pipeline logs,
a slim checkpoint (loaded with ``torch.load(weights_only=True)``) and the tokenizer folder;
the model is then built by the installed package from the checkpoint's config. Models
logged as pickles (language models, by earlier versions) are refused with what to use instead.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class StoredModel:
    """A model's files, downloaded: its checkpoint and tokenizer folder, and its run."""

    uri: str
    checkpoint: Path
    tokenizer: Path
    run_id: str | None

    @contextmanager
    def named_in_errors(self) -> Iterator[None]:
        """Errors about the downloaded checkpoint name the model as the user gave it."""
        try:
            yield
        except PipelineError as exc:
            message = str(exc).replace(str(self.checkpoint), self.uri)
            raise type(exc)(message) from None


@contextmanager
def open_stored_model(reference: str, tracking_uri: str, usage: str) -> Iterator[StoredModel]:
    """The files of the model ``reference`` names (a run id, ``runs:/``, ``models:/`` or a
    local model folder), in a temporary folder while the context lasts. ``usage``: what to
    do instead if it is a pickled model, for the message."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    local = Path(reference).is_dir()
    if not local:
        _check_store(reference, mlflow.get_tracking_uri())
    uri = reference if (":/" in reference or local) else run_model_uri(mlflow, reference)
    with tempfile.TemporaryDirectory(prefix="stored-model-") as tmp:
        folder = Path(reference) if local else _download(mlflow, uri, Path(tmp))
        yield _read(folder, uri, usage)


def run_model_uri(mlflow: Any, run_id: str) -> str:
    """``runs:/<run id>/<model name>`` of the model a run logged last (models are named after
    their run); ``runs:/<run id>/model`` where the run records none (older runs, stores)."""
    try:
        client = mlflow.MlflowClient()
        outputs = client.get_run(run_id).outputs
        logged = outputs.model_outputs if outputs is not None else []
        if logged:
            return f"runs:/{run_id}/{client.get_logged_model(logged[-1].model_id).name}"
    except Exception:  # no such run: the download says so, naming the usual URI
        pass
    return f"runs:/{run_id}/model"


def _check_store(reference: str, store: str) -> None:
    """A SQLite store that does not exist: MLflow would create an empty one, then fail."""
    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///") :]).is_file():
        raise PipelineError(
            f"There is no MLflow store at {store} to find {reference} in. Run this where you "
            "trained (its mlflow.db), set tracking_uri=sqlite:///<path to mlflow.db> or "
            "http://<server>, or pass the run's checkpoint (best.pt)."
        )


def _download(mlflow: Any, uri: str, into: Path) -> Path:
    from pipeline.tracking.extras import quiet_mlflow

    try:
        with quiet_mlflow():
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into)))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise PipelineError(
            f"Cannot load the model {uri} from MLflow at {mlflow.get_tracking_uri()} "
            f"({type(exc).__name__}: {reason}). Check the run id or model name and version, "
            "set tracking_uri=... (or MLFLOW_TRACKING_URI) to the store that holds it, or "
            "pass the run's checkpoint (best.pt) instead."
        ) from None


def _read(folder: Path, uri: str, usage: str) -> StoredModel:
    """The checkpoint and tokenizer an ``MLmodel`` lists, or one error saying what it is."""
    from mlflow.models import Model

    if not (folder / "MLmodel").is_file():
        raise PipelineError(
            f"{uri} is not an MLflow model (it has no MLmodel file). Pass a run id, "
            "runs:/<run id>/<model name>, models:/<name>/<version> or the run's checkpoint "
            "(best.pt)."
        )
    meta = Model.load(str(folder / "MLmodel"))  # YAML, read with yaml.safe_load
    artifacts = (meta.flavors.get("python_function") or {}).get("artifacts") or {}
    paths = {name: folder / str(spec.get("path", "")) for name, spec in artifacts.items()}
    checkpoint, tokenizer = paths.get("checkpoint"), paths.get("tokenizer")
    if checkpoint is None or tokenizer is None or not (checkpoint.is_file() and tokenizer.is_dir()):
        raise PipelineError(_foreign(uri, sorted(meta.flavors), usage))
    return StoredModel(uri, checkpoint, tokenizer, meta.run_id)


def _foreign(uri: str, flavors: list[str], usage: str) -> str:
    if "pytorch" in flavors:
        return (
            f"{uri} is a PyTorch model stored as a pickle (an older seqpipe logged language "
            "models so). Loading it would unpickle it, which can run any code stored with it, "
            f"so seqpipe refuses. {usage}"
        )
    return (
        f"{uri} is not a model logged by this pipeline (its flavors: "
        f"{', '.join(flavors) or 'none'}; it lacks the checkpoint and tokenizer artifacts). "
        f"{usage}"
    )
