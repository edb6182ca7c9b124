"""The params a run logs: what a person compares between runs, not the whole config.

The rule (the full resolved config stays an artifact, ``config.yaml``):

- each config group's choice, as a param named by the group: ``encoder=lstm``, ``data=sst2``
  (:data:`CHOICE_GROUPS`, and ``experiment`` when one is chosen);
- each hyper-parameter whose value differs from its default for the chosen option
  (:func:`pipeline.config.schemas.schema_default`: ``optimizer=sgd`` has its own lr), or that
  the command line sets (so every child of a sweep logs the keys swept, its default too);
- not hyper-parameters: the ``tracking`` section (how the run is recorded), ``name`` keys (the
  group choice says them), :data:`NOT_HYPERPARAMETERS` (display, files, resuming), and the
  data preset's own keys (where its files are, columns, labels, caches): of ``data``, only
  the limits in :data:`DATA_KNOBS` count, compared with the preset's file;
- ``seed`` always, and ``n_params`` once the model is built;
- never a ``None`` value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: The config groups whose choice is a param (``data`` first: what a run is about).
CHOICE_GROUPS = ("task", "data", "tokenizer", "embedding", "encoder", "pooler", "head", "optimizer")
#: Groups whose keys are never hyper-parameters.
NOT_COMPARED_GROUPS = ("tracking",)
#: Fields that name what a group's choice is (the choice's param says them already):
#: every group's ``name``, and the task's kind.
IDENTITY_FIELDS = ("name", "type")
#: Keys that change how a run is shown or where it writes, not what it trains.
NOT_HYPERPARAMETERS = frozenset(
    {
        "trainer.progress",
        "trainer.log_every_n_steps",
        "trainer.checkpoint_dir",
        "trainer.resume",
        "task.sample_prompt",  # the text sample a language model logs each epoch
        "task.sample_tokens",
    }
)
#: The data keys that change which rows (and how much, which part of each) the model sees.
DATA_KNOBS = (
    "max_length",
    "truncation_side",
    "related_words",
    "max_train_samples",
    "max_eval_samples",
    "max_train_lines",
    "max_eval_lines",
    "validation_fraction",
    "test_fraction",
)


def group_choices(cfg: DictConfig, experiment: str | None = None) -> dict[str, str]:
    """``{"data": "sst2", "encoder": "lstm", ...}``: each group's chosen option."""
    choices = {g: str(cfg[g].name) for g in CHOICE_GROUPS if g in cfg and "name" in cfg[g]}
    if experiment:
        choices["experiment"] = experiment
    return choices


def hyperparameters(cfg: DictConfig, set_keys: Iterable[str] = ()) -> dict[str, Any]:
    """The hyper-parameters that differ from their defaults or that the command line sets."""
    from pipeline.config.schemas import NO_DEFAULT, schema_default
    from pipeline.tracking.tracker import flatten

    explicit = set(set_keys)
    found: dict[str, Any] = {}
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for group, node in resolved.items():
        if not isinstance(node, dict) or group in NOT_COMPARED_GROUPS or group == "data":
            continue
        for key, value in flatten(node, f"{group}.").items():
            identity = key.rsplit(".", 1)[-1] in IDENTITY_FIELDS
            if identity or key in NOT_HYPERPARAMETERS or value is None:
                continue
            default = schema_default(key, cfg)
            if key in explicit or default is NO_DEFAULT or value != default:
                found[key] = value
    found.update(_data_knobs(resolved.get("data") or {}, explicit))
    return found


def _data_knobs(data: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """The data limits that differ from the chosen preset's file (or are set explicitly)."""
    preset = _preset(str(data.get("name", "")))
    found = {}
    for knob in DATA_KNOBS:
        key, value = f"data.{knob}", data.get(knob)
        if value is not None and (key in explicit or value != preset.get(knob)):
            found[key] = value
    return found


def _preset(name: str) -> dict[str, Any]:
    """The values of ``conf/data/<name>.yaml`` ({} where there is no such preset)."""
    from importlib.resources import files

    path = files("conf") / "data" / f"{name}.yaml"
    if not name or not path.is_file():
        return {}
    loaded = OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=False)
    return loaded if isinstance(loaded, dict) else {}


def run_params(
    cfg: DictConfig, set_keys: Iterable[str] = (), experiment: str | None = None
) -> dict[str, Any]:
    """All the params of a run at its start (``n_params`` follows once the model is built)."""
    params: dict[str, Any] = dict(group_choices(cfg, experiment))
    params.update(hyperparameters(cfg, set_keys))
    if cfg.get("seed") is not None:
        params["seed"] = cfg.seed
    return {k: v for k, v in params.items() if v is not None}
