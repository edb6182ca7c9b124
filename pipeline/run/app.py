"""The Hydra app over ``conf/config.yaml``: one training run per (multi)run job."""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from pipeline.errors import PipelineError


@hydra.main(config_path="pkg://conf", config_name="config", version_base=None)
def hydra_app(cfg: DictConfig) -> float | None:
    """Train and evaluate; return the monitored validation metric (for sweepers)."""
    from pipeline.run.runner import run

    try:
        result = run(cfg)
    except PipelineError as exc:
        stop(exc.label, str(exc), exc.exit_code)
    except KeyboardInterrupt as exc:  # a signal outside the training steps (or a second one)
        label = getattr(exc, "label", "stopped")
        text = str(exc) or "Interrupted (SIGINT)"
        stop(label, text, getattr(exc, "exit_code", 130))  # 128 + SIGINT
    return result.metrics.get(str(cfg.trainer.monitor))


def stop(label: str, message: str, exit_code: int) -> None:
    """Print ``label: message`` alone (no traceback) and exit; ``HYDRA_FULL_ERROR=1`` shows
    the traceback instead."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise
    print(f"{label}: {message}", file=sys.stderr)
    sys.exit(exit_code)
