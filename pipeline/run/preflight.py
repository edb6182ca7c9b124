"""Before Hydra writes anything: the run's output folder must be writable.

Hydra creates the run (or sweep) folder and writes ``.hydra/`` and the job's log there
before our code runs; a read-only, forbidden or full folder then ends in Hydra's traceback.
This callback (``hydra.callbacks.preflight`` in ``conf/config.yaml``) looks first, asking
the file system without writing, and says which folder and why in one ``error:`` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.errors import PipelineError, exit_with
from pipeline.runtime.files import check_writable


class OutputFolderCheck(Callback):
    """Refuse a run whose Hydra output folder cannot be written, before Hydra makes it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_folder(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_folder(config, "hydra.sweep.dir")


def check_folder(config: DictConfig, key: str) -> None:
    """``error: Cannot write <folder> (<key>): <cause>. ...`` and exit 2, if it cannot be."""
    try:
        folder = OmegaConf.select(config, key)
    except Exception:  # an interpolation only Hydra's job can resolve: leave it to Hydra
        return
    if not folder:
        return
    try:
        check_writable(Path(str(folder)).absolute(), key)
    except PipelineError as exc:
        exit_with(exc)
