"""Before Hydra writes anything: the run's output folder must be writable, and a search
must search the right way.

Hydra creates the run (or sweep) folder and writes ``.hydra/`` and the job's log there
before our code runs; a read-only, forbidden or full folder then ends in Hydra's traceback.
This callback (``hydra.callbacks.preflight`` in ``conf/config.yaml``) looks first, asking
the file system without writing, and says which folder and why in one ``error:`` line.

A sweeper with a ``direction`` (Optuna) optimizes the value the app returns,
``trainer.monitor``; Optuna's default, ``minimize``, on ``val/accuracy`` searches for the
worst settings. ``SearchDirectionCheck`` (``hydra.callbacks.search_direction``) refuses a
direction against ``trainer.monitor_mode`` before the first trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.errors import ConfigError, PipelineError, exit_with
from pipeline.run.recording import search_direction
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


class SearchDirectionCheck(Callback):
    """Refuse a search whose direction works against ``trainer.monitor_mode``."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_search_direction(config)


def check_search_direction(config: DictConfig) -> None:
    """``error: hydra.sweeper.direction is minimize, but ...`` and exit 2 when a sweeper's
    single direction goes against ``trainer.monitor_mode`` (a list: several objectives, which
    the app, returning one value, does not make: left to the sweeper)."""
    try:
        direction = OmegaConf.select(config, "hydra.sweeper.direction")
        mode = str(config.trainer.monitor_mode)
        wanted = search_direction(mode)
    except Exception:  # no such sweeper, or a mode the config check reports itself
        return
    name = str(getattr(direction, "name", direction))  # Optuna's Direction enum, or its name
    if name not in ("maximize", "minimize") or name == wanted:
        return
    way = "up" if mode == "max" else "down"
    exit_with(
        ConfigError(
            f"hydra.sweeper.direction is {name}, but trainer.monitor "
            f"({config.trainer.monitor}) should go {way} (trainer.monitor_mode={mode}): the "
            f"search would look for the worst settings. Use hydra/sweeper=search (its "
            f"direction follows trainer.monitor_mode) or hydra.sweeper.direction={wanted}."
        )
    )
