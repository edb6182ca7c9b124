"""Settings a chosen component (or the data) suggests, applied where the user left the
default.

A transformer trains on small data with a smaller learning rate and a warmup than an LSTM
wants; asking every user to know that is asking them to know presets. So a component's
config may name the settings it trains best with (``suggested_settings()``), and a run
applies each one only where the user did not decide: the key is not on the command line
and still holds its default (so an experiment preset or a task preset that set it wins).
The task may suggest settings too, once it has read the data (``suggested_settings()`` on
the task, after ``prepare``): a few thousand short sentences want more epochs than 25,000
long reviews. Each applied suggestion is printed at the start with who made it, and the
run's recorded config holds the values used. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline.config.groups import job_overrides, override_keys
from pipeline.config.schemas import NO_DEFAULT, schema_default

#: The groups whose chosen option's config may suggest settings.
SUGGESTING_GROUPS = ("embedding", "encoder", "pooler", "head")


@dataclass(frozen=True)
class Suggestion:
    key: str  # a dotted config key, e.g. "optimizer.lr"
    value: Any
    source: str  # who suggests it, e.g. "encoder=transformer"


def suggestions_of(cfg: DictConfig) -> list[Suggestion]:
    """What the chosen components suggest, in group order."""
    from pipeline import registry

    found = []
    for group in SUGGESTING_GROUPS:
        config = registry.ALL[group].config_from(cfg[group])
        suggest = getattr(config, "suggested_settings", None)
        for key, value in (suggest() if callable(suggest) else {}).items():
            found.append(Suggestion(key, value, f"{group}={cfg[group].name}"))
    return found


def apply_suggestions(
    cfg: DictConfig, suggestions: list[Suggestion], given: set[str] | None = None
) -> list[Suggestion]:
    """Set each suggested value whose key the user left alone; return those applied.

    ``given``: the keys set on the command line (default: this Hydra job's overrides).
    """
    given = command_line_keys() if given is None else given
    applied = []
    for suggestion in suggestions:
        if not would_apply(cfg, suggestion, given):
            continue
        with open_dict(cfg):
            OmegaConf.update(cfg, suggestion.key, suggestion.value, merge=False)
        applied.append(suggestion)
    return applied


def would_apply(cfg: DictConfig, suggestion: Suggestion, given: set[str] | None = None) -> bool:
    """Whether ``apply_suggestions`` would set ``suggestion``: its key is not on the command
    line (``given``) and still holds its default."""
    given = command_line_keys() if given is None else given
    if suggestion.key in given:
        return False
    current = OmegaConf.select(cfg, suggestion.key, default=NO_DEFAULT)
    return current is not NO_DEFAULT and current == schema_default(suggestion.key, cfg)


def apply_data_suggestions(ctx: Any, task: Any) -> list[Suggestion]:
    """After ``task.prepare``: apply what the task suggests from the data it read to the
    run's config and to its checked sections (``ctx.trainer``, ``ctx.optimizer``,
    ``ctx.task``); print and return those applied."""
    suggest = getattr(task, "suggested_settings", None)
    applied = apply_suggestions(ctx.cfg, suggest() if callable(suggest) else [])
    sections = {"trainer": ctx.trainer, "optimizer": ctx.optimizer, "task": ctx.task}
    for s in applied:
        group, _, name = s.key.partition(".")
        if group in sections:
            setattr(sections[group], name, s.value)
    for line in describe_applied(applied):
        print(line, flush=True)
    return applied


def describe_applied(applied: list[Suggestion]) -> list[str]:
    """One line per suggesting component: ``encoder=transformer suggests optimizer.lr=...``."""
    by_source: dict[str, list[str]] = {}
    for s in applied:
        by_source.setdefault(s.source, []).append(f"{s.key}={s.value}")
    return [
        f"settings suggested by {source}: {', '.join(items)} (give any of them to override)"
        for source, items in by_source.items()
    ]


def command_line_keys() -> set[str]:
    """The keys this Hydra job's overrides set (``optimizer.lr=1e-3`` -> ``optimizer.lr``);
    empty outside a Hydra job."""
    return set(override_keys(job_overrides()))
