"""The config groups the command line knows, and the schema behind each option: shared by
the CLI's checks and ``--help``, with no import of either."""

from __future__ import annotations

import dataclasses

GROUPS = (
    "data",
    "tokenizer",
    "embedding",
    "encoder",
    "pooler",
    "head",
    "optimizer",
    "trainer",
    "tracking",
    "task",
    "experiment",
)


def schema_of(group: str, option: str) -> type | None:
    """The config dataclass behind ``group=option``, where the core knows it."""
    from pipeline import registry
    from pipeline.config.schemas import OptimizerConfig, TrackingConfig, TrainerConfig

    schemas: dict[str, type] = {
        "trainer": TrainerConfig,
        "optimizer": OptimizerConfig,
        "tracking": TrackingConfig,
    }
    if group == "data":
        from pipeline.data.corpus import CorpusConfig, corpus_presets
        from pipeline.data.labelled import DataConfig

        schemas["data"] = CorpusConfig if option in corpus_presets() else DataConfig
    elif group in registry.ALL and option in registry.ALL[group]:
        schemas[group] = registry.ALL[group].get(option).config
    return schemas.get(group)


def schema_fields(group: str, option: str) -> set[str] | None:
    """Field names of the schema behind ``group=option``, where the core knows it."""
    schema = schema_of(group, option)
    return {f.name for f in dataclasses.fields(schema)} if schema else None
