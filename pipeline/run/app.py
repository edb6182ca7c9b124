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
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{exc.label}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    return result.metrics.get(str(cfg.trainer.monitor))
