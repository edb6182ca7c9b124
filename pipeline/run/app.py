"""The Hydra app over ``conf/config.yaml``: one training run per (multi)run job."""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from pipeline.errors import PipelineError, exit_with
from pipeline.runtime.files import storage_fault


@hydra.main(config_path="pkg://conf", config_name="config", version_base=None)
def hydra_app(cfg: DictConfig) -> float | None:
    """Train and evaluate; return the monitored validation metric (for sweepers)."""
    from pipeline.run.runner import run

    try:
        result = run(cfg)
    except PipelineError as exc:
        exit_with(exc)
    except KeyboardInterrupt as exc:  # a signal outside the training steps (or a second one)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        label = getattr(exc, "label", "stopped")
        print(f"{label}: {str(exc) or 'Interrupted (SIGINT)'}", file=sys.stderr, flush=True)
        sys.exit(getattr(exc, "exit_code", 130))  # 128 + SIGINT
    except Exception as exc:  # a full disk, a read-only or forbidden folder: say which
        fault = storage_fault(exc)
        if fault is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        exit_with(fault)
    return result.metrics.get(str(cfg.trainer.monitor))
