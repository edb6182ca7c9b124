"""What the command line chooses: the config groups, the schema behind each option, and this
Hydra job's own overrides. Shared by the CLI's checks, ``--help``, suggestions and the run,
with no import of any of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

GROUPS = (
    "data",
    "tokenizer",
    "embedding",
    "encoder",
    "pooler",
    "head",
    "optimizer",
    "trainer",
    "model",
    "tracking",
    "task",
    "experiment",
)


def schema_of(group: str, option: str) -> type | None:
    """The config dataclass behind ``group=option``, where the core knows it."""
    from pipeline import registry
    from pipeline.config.schemas import (
        ModelConfig,
        OptimizerConfig,
        TrackingConfig,
        TrainerConfig,
    )

    schemas: dict[str, type] = {
        "trainer": TrainerConfig,
        "model": ModelConfig,
        "optimizer": OptimizerConfig,
        "tracking": TrackingConfig,
    }
    if group == "data":
        from pipeline.data.corpus_config import CorpusConfig, corpus_presets
        from pipeline.data.data_config import DataConfig
        from pipeline.data.synthetic import LongLagConfig, generated_presets
        from pipeline.data.tagged import TaggedDataConfig, tagged_presets

        stored = stored_schema(group, option)  # a plugin's own data option
        schemas["data"] = stored or (CorpusConfig if option in corpus_presets() else DataConfig)
        if option in tagged_presets():
            schemas["data"] = TaggedDataConfig
        if option in generated_presets():
            schemas["data"] = LongLagConfig
    elif group in registry.ALL and option in registry.ALL[group]:
        schemas[group] = registry.ALL[group].get(option).config
    return schemas.get(group)


def stored_schema(group: str, option: str) -> type | None:
    """The dataclass of ``group=option`` where a plugin stored it in Hydra's ConfigStore as a
    structured config (``cs.store(group="data", name=..., node=MyDataConfig())``), else None.
    Our own data options are YAML files in ``conf/``, not in the ConfigStore."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    try:
        if not option or f"{option}.yaml" not in ConfigStore.instance().list(group):
            return None
    except OSError:  # no option of the group is in the ConfigStore
        return None
    node = ConfigStore.instance().load(f"{group}/{option}.yaml").node
    schema = OmegaConf.get_type(node)
    return schema if dataclasses.is_dataclass(schema) else None


def schema_fields(group: str, option: str) -> set[str] | None:
    """Field names of the schema behind ``group=option``, where the core knows it."""
    schema = schema_of(group, option)
    return {f.name for f in dataclasses.fields(schema)} if schema else None


def job_overrides() -> list[str]:
    """This Hydra job's own overrides (``encoder=gru``), or [] outside a Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def override_keys(overrides: Iterable[str]) -> list[str]:
    """The keys ``key=value`` overrides set (``+key=...``, ``~key=...`` too)."""
    return [item.split("=", 1)[0].lstrip("+~") for item in overrides if "=" in item]
