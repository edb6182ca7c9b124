"""What a run records about itself: its name, code version, config and output folder."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def output_directory() -> Path:
    """The Hydra run's output directory, or ``./outputs/manual`` outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path("outputs") / "manual"


#: The resolver in ``hydra.run.dir`` / ``hydra.sweep.dir`` (``conf/config.yaml``).
TOKEN_RESOLVER = "run_token"
#: The resolver in the search sweeper's ``direction`` (``conf/hydra/sweeper/search.yaml``).
DIRECTION_RESOLVER = "search_direction"
_token: str | None = None


def run_token() -> str:
    """A short id that tells apart runs started in the same second (output folders
    ``outputs/<date>/<time>-<token>``): random, once per process; the processes of one
    torchrun job share it (derived from their rendezvous), so they share one folder."""
    global _token
    if _token is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("MASTER_PORT"):
            keys = ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
            job = "|".join(os.environ.get(k, "") for k in keys)
            _token = hashlib.sha256(job.encode()).hexdigest()[:6]
        else:
            _token = secrets.token_hex(3)
    return _token


def search_direction(mode: str) -> str:
    """The sweeper's direction for a ``trainer.monitor_mode``: max -> maximize, min -> minimize
    (``${search_direction:${trainer.monitor_mode}}`` in ``conf/hydra/sweeper/search.yaml``)."""
    directions = {"max": "maximize", "min": "minimize"}
    if mode not in directions:
        raise ValueError(f"trainer.monitor_mode must be max or min, not {mode!r}")
    return directions[mode]


def register_resolvers() -> None:
    """``${run_token:}`` for the config. Cached, so that every job of a sweep (Hydra copies
    the cache into each job's config, in worker processes too) sees its sweep's value. And
    ``${search_direction:...}`` for the search sweeper."""
    if not OmegaConf.has_resolver(TOKEN_RESOLVER):
        OmegaConf.register_new_resolver(TOKEN_RESOLVER, run_token, use_cache=True)
    if not OmegaConf.has_resolver(DIRECTION_RESOLVER):
        OmegaConf.register_new_resolver(DIRECTION_RESOLVER, search_direction)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_name(cfg: DictConfig) -> str:
    """Say what differs: ``lstm-h128-bi-l2-imdb``."""
    enc = cfg.encoder
    parts = [str(enc.name)]
    if "hidden_size" in enc:
        parts.append(f"h{enc.hidden_size}")
    if enc.get("bidirectional"):
        parts.append("bi")
    if enc.get("num_layers", 1) and enc.get("num_layers", 1) > 1:
        parts.append(f"l{enc.num_layers}")
    parts.append(str(cfg.data.name))
    return "-".join(parts)


def record_config(cfg: DictConfig, tracker: Any, out_dir: Path) -> dict:
    """Write the resolved config to ``config.yaml``, log it as an artifact and return it
    (the params, what a person compares, are :mod:`pipeline.run.params`)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    tracker.log_artifact(out_dir / "config.yaml")
    return resolved


def quiet_libraries(progress: str) -> None:
    """Keep the console for the run's own lines: no INFO chatter from libraries (MLflow's
    "Creating a new experiment", its "View run at"; ``MLFLOW_LOGGING_LEVEL`` set by the
    user wins), and no per-map progress bars from ``datasets`` unless ``trainer.progress=bar``
    asked for every bar there is."""
    import logging

    import datasets

    level = os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read at mlflow import
    if "mlflow" in sys.modules:  # imported already (in-process runs): set it now
        logging.getLogger("mlflow").setLevel(level.upper())
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # pickle format is ours
    if progress != "bar":
        datasets.disable_progress_bars()
