"""Models loaded back from MLflow run nothing stored with them: a language model is logged
as weights + config + tokenizer and rebuilt by this package; a tampered code file or a
pickled model in the store never runs (``pipeline.inference.stored``). In-process, on a
tiny language model trained for one epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from pipeline.errors import PipelineError
from pipeline.inference.generate import load_generator
from pipeline.model.sampling import sample
from pipeline.run.runner import run


class Payload:
    """Unpickling it creates the file ``marker``: proof that stored code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, data_dir) -> dict:
    """A one-epoch character model, tracked (and its model logged) in its own store."""
    cwd = tmp_path_factory.mktemp("stored")
    store = f"sqlite:///{cwd / 'mlflow.db'}"
    overrides = ["task=lm", "data.max_train_chars=4000", "trainer.max_epochs=1"]
    overrides += ["trainer.bptt=20", "task.sample_tokens=0", "trainer.progress=none"]
    overrides += ["encoder.hidden_size=16", "embedding.dim=16", f"tracking.uri={store}"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setenv("PIPELINE_DATA_DIR", str(data_dir))
        with initialize_config_module(config_module="conf", version_base=None):
            result = run(compose(config_name="config", overrides=overrides))
    best = cwd / result.best_checkpoint
    return {"cwd": cwd, "store": store, "run_id": result.run_id, "best": best}


def logged_model_folder(lm_run: dict) -> Path:
    """Where the store keeps the run's logged model (its artifacts, on this disk)."""
    found = [p.parent for p in (lm_run["cwd"] / "mlruns").rglob("MLmodel")]
    (folder,) = [f for f in found if (f / "artifacts" / "language_model.pt").is_file()]
    return folder


def run_name_of(lm_run: dict) -> str:
    from mlflow import MlflowClient

    return MlflowClient(lm_run["store"]).get_run(lm_run["run_id"]).info.run_name


def text(model_and_tokenizer, prompt: str = "the") -> str:
    model, tokenizer = model_and_tokenizer
    return sample(model, tokenizer, prompt, max_tokens=20, temperature=0.8, seed=1)


def test_a_language_model_is_logged_as_weights_and_config_not_a_pickle(lm_run):
    from mlflow.models import Model

    folder = logged_model_folder(lm_run)
    assert set(Model.load(str(folder / "MLmodel")).flavors) == {"python_function"}
    files = [p.name for p in folder.rglob("*") if p.is_file()]
    assert not [name for name in files if name.endswith((".pth", ".pkl", ".pickle"))], files
    (checkpoint,) = folder.rglob("language_model.pt")
    assert "optimizer" not in torch.load(checkpoint, weights_only=True)
    from_store = load_generator(lm_run["run_id"], lm_run["store"])
    assert text(from_store) == text(load_generator(str(lm_run["best"])))


def test_generate_does_not_run_the_code_stored_with_the_model(lm_run, tmp_path):
    folder = logged_model_folder(lm_run)
    (code,) = folder.glob("*.py")
    (checkpoint,) = folder.rglob("language_model.pt")
    original_code, original_weights = code.read_text(), checkpoint.read_bytes()
    marker = tmp_path / "code-ran"
    try:
        code.write_text(f"open({str(marker)!r}, 'w')\n" + original_code)
        assert text(load_generator(lm_run["run_id"], lm_run["store"]))
        assert not marker.exists()
        torch.save({"model": Payload(marker)}, checkpoint)
        with pytest.raises(PipelineError, match="pickled Python objects or code") as error:
            load_generator(lm_run["run_id"], lm_run["store"])
        assert not marker.exists()
        assert "refused for safety" in str(error.value) and "may be truncated" not in str(error)
        named = f"runs:/{lm_run['run_id']}/{run_name_of(lm_run)}"  # the model: after its run
        assert named in str(error.value)  # not the download's path
    finally:
        code.write_text(original_code)
        checkpoint.write_bytes(original_weights)


def test_a_model_stored_as_a_pickle_is_refused_unopened(lm_run, tmp_path):
    """How seqpipe 0.1 logged language models: ``mlflow.pytorch`` with a pickled module."""
    import mlflow

    before = set((lm_run["cwd"] / "mlruns").rglob("model.pth"))
    mlflow.set_tracking_uri(lm_run["store"])
    mlflow.set_experiment("pickled")
    with mlflow.start_run() as pickled:
        mlflow.pytorch.log_model(torch.nn.Linear(2, 2), name="model", serialization_format="pickle")
    (stored,) = set((lm_run["cwd"] / "mlruns").rglob("model.pth")) - before
    marker = tmp_path / "unpickled"
    torch.save(Payload(marker), stored)
    with pytest.raises(PipelineError, match="stored as a pickle") as error:
        load_generator(pickled.info.run_id, lm_run["store"])
    assert not marker.exists()
    assert "generate model=outputs/<date>/<time>/best.pt" in str(error.value)
