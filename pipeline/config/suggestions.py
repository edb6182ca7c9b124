"""Settings a chosen component suggests for other groups, applied where the user left the
default.

A transformer trains on small data with a smaller learning rate and a warmup than an LSTM
wants; asking every user to know that is asking them to know presets. So a component's
config may name the settings it trains best with (``suggested_settings()``), and a run
applies each one only where the user did not decide: the key is not on the command line
and still holds its default (so an experiment preset or a task preset that set it wins).
Each applied suggestion is printed at the start with who made it, and the run's recorded
config holds the values used. Pure config work: no torch, no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline.config.schemas import schema_default

#: The groups whose chosen option's config may suggest settings.
SUGGESTING_GROUPS = ("embedding", "encoder", "pooler", "head")

_UNKNOWN = object()


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
        key = suggestion.key
        if key in given:
            continue
        current = OmegaConf.select(cfg, key, default=_UNKNOWN)
        if current is _UNKNOWN or current != schema_default(key, cfg):
            continue
        with open_dict(cfg):
            OmegaConf.update(cfg, key, suggestion.value, merge=False)
        applied.append(suggestion)
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
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}
