"""Tasks: what differs between classification, language modelling, tagging... Each is a
``pipeline.contracts.Task``, registered in ``pipeline.tasks.kinds`` under the kind that
``task.type`` names; the task presets in ``conf/task/`` pick one. A third party adds a kind
the way it adds any component: ``kinds.declare("my_kind", TaskConfig,
"my_pkg.task:MyTask")`` in its plugin module.

This package is the only place that knows what a task is.
"""

from __future__ import annotations

from typing import Any

from pipeline.config.schemas import TaskConfig
from pipeline.registry import Registry, providing
from pipeline.tasks.configs import TaggingTaskConfig

#: The task kinds, chosen by ``task.type`` (set by the task presets): not a config group of
#: their own, so nothing goes into Hydra's ConfigStore.
kinds: Registry[Any] = Registry("task kind", "task.type", store=False, base=TaskConfig)

#: A built-in kind's own config, where it has one (else ``TaskConfig``).
CONFIGS: dict[str, type] = {"tagging": TaggingTaskConfig}
BUILT_IN = {
    "classification": "pipeline.tasks.classification:ClassificationTask",
    "language_model": "pipeline.tasks.language_model:LanguageModelTask",
    "tagging": "pipeline.tasks.tagging:TaggingTask",
}


def declare_built_in() -> None:
    """Declare the core's task kinds (idempotent; imports no torch)."""
    with providing("seqpipe"):  # the distribution of the core
        for kind, target in BUILT_IN.items():
            if kind not in kinds:
                kinds.declare(kind, CONFIGS.get(kind, TaskConfig), target)


def build(cfg: Any) -> Any:
    """The task ``cfg.task.type`` names, built from the composed config (which it checks)."""
    declare_built_in()
    return kinds.get(str(cfg.task.type)).build(cfg)


def config_schema(cfg: Any) -> type:
    """The config dataclass of the task kind ``cfg`` names: ``TaskConfig``, or the subclass
    a plugin declared its kind with, so that a kind's own ``task.*`` settings are known."""
    declare_built_in()
    return kinds.get(str(cfg.task.type)).config


def suggested_defaults(cfg: Any) -> dict[str, Any]:
    """What the task kind ``cfg`` names suggests for other groups: its config's optional
    ``suggested_settings()`` (``{"group.key": value}``; ``pipeline.tasks.configs``). Imports
    no torch: the run applies them with the components' suggestions, before any section is
    read, so a config error still answers at once and a resumed run sees them too."""
    declare_built_in()
    config = kinds.get(str(cfg.task.type)).config()
    suggest = getattr(config, "suggested_settings", None)
    return dict(suggest()) if callable(suggest) else {}


def provider(cfg: Any) -> str:
    """The distribution that provides the task kind ``cfg`` names (a run's tags)."""
    declare_built_in()
    return kinds.get(str(cfg.task.type)).provider


def kind(name: str) -> Any:
    """The task class of a kind (a checkpoint's ``Checkpoint.kind``): what its checkpoints
    predict and which sub-command uses them."""
    declare_built_in()
    return kinds.get(name).cls
