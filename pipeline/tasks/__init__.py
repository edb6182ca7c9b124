"""Tasks: what differs between classification, language modelling, tagging... Each is a
``pipeline.contracts.Task``, registered in ``pipeline.registry.tasks`` under the kind that
``task.type`` names; the task presets in ``conf/task/`` pick one. A third party adds a kind
the way it adds any component: ``registry.tasks.declare("my_kind", TaskConfig,
"my_pkg.task:MyTask")`` in its plugin module.

This package is the only place that knows what a task is.
"""

from __future__ import annotations

from typing import Any

from pipeline import registry
from pipeline.config.schemas import TaskConfig

BUILT_IN = {
    "classification": "pipeline.tasks.classification:ClassificationTask",
    "language_model": "pipeline.tasks.language_model:LanguageModelTask",
}


def declare_built_in() -> None:
    """Declare the core's task kinds (idempotent; imports no torch)."""
    with registry.providing("seqpipe"):  # the distribution of the core
        for kind, target in BUILT_IN.items():
            if kind not in registry.tasks:
                registry.tasks.declare(kind, TaskConfig, target)


def build(cfg: Any) -> Any:
    """The task ``cfg.task.type`` names, built from the composed config (which it checks)."""
    declare_built_in()
    return registry.tasks.get(str(cfg.task.type)).cls(cfg)


def kind(name: str) -> Any:
    """The task class of a kind (a checkpoint's ``Checkpoint.kind``): what its checkpoints
    predict and which sub-command uses them."""
    declare_built_in()
    return registry.tasks.get(name).cls
