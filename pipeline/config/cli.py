"""Command-line helpers that run before Hydra: clear errors for unknown group options,
and the ``plugins`` listing."""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

from hydra.core.config_store import ConfigStore

from pipeline.config.groups import GROUPS, schema_fields, schema_of  # noqa: F401 (the CLI's names)
from pipeline.errors import ConfigError, did_you_mean


def group_options(group: str) -> set[str]:
    """Options of a config group: YAML files in ``conf/<group>/`` plus ConfigStore entries."""
    options = {name.removesuffix(".yaml") for name in ConfigStore.instance().repo.get(group, {})}
    folder = resources.files("conf") / group
    if folder.is_dir():
        options |= {
            p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
        }
    return options


def default_choices() -> dict[str, str]:
    """The option each group takes when the command line names none (conf/config.yaml)."""
    import yaml

    root = yaml.safe_load((resources.files("conf") / "config.yaml").read_text())
    choices = {}
    for item in root["defaults"]:
        if isinstance(item, dict):
            for key, value in item.items():
                choices[key.removeprefix("optional ")] = value
    return choices


def preset_choices(group: str, option: str) -> dict[str, str]:
    """The ``override /<group>: <option>`` entries of a preset (task, experiment) YAML."""
    import yaml

    path = resources.files("conf") / group / f"{option}.yaml"
    if path.is_file():
        defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults", [])
    else:  # a plugin's preset, stored in Hydra's ConfigStore
        defaults = stored_defaults(group, option)
    return {
        key.removeprefix("override /"): value
        for item in defaults
        if isinstance(item, dict)
        for key, value in item.items()
        if key.startswith("override /")
    }


def stored_defaults(group: str, option: str) -> list[Any]:
    """The defaults list of ``group=option`` stored in Hydra's ConfigStore, or []."""
    from omegaconf import OmegaConf

    try:
        node = ConfigStore.instance().load(f"{group}/{option}.yaml").node
    except Exception:  # not stored there (Hydra raises its own ConfigLoadError)
        return []
    found = node.get("defaults") if OmegaConf.is_dict(node) else None
    return OmegaConf.to_container(found) if found is not None else []


def check_value_type(schema: type, key: str, field: str, override: str) -> None:
    """``trainer.batch_size=abc``: one short message with an example, before Hydra's own
    multi-line composition error. Sweeps and interpolations are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    try:
        parsed = OverridesParser.create().parse_overrides([override])[0]
        if parsed.is_sweep_override():
            return
        value = parsed.value()
    except Exception:  # Hydra reports its own syntax errors
        return
    if isinstance(value, str) and "${" in value:
        return
    try:
        OmegaConf.merge(OmegaConf.structured(schema), {field: value})
    except ValidationError as exc:
        reason = str(exc.msg).splitlines()[0].rstrip(".")
        default = next(
            (f.default for f in dataclasses.fields(schema) if f.name == field), dataclasses.MISSING
        )
        example = ""
        if default is not dataclasses.MISSING and default is not None:
            shown = str(default).lower() if isinstance(default, bool) else default
            example = f" Give a value of the right type, e.g. {key}={shown}."
        raise ConfigError(f"Invalid value {override}: {reason}.{example}") from None


def resolve_choices(explicit: dict[str, list[str]]) -> dict[str, list[str]]:
    """The option(s) of each group, in Hydra's order: the root defaults, then what the task
    preset overrides, then the experiment preset (and the task it picks), then the command
    line. Presets are followed only where one option is chosen (not in a sweep)."""
    chosen = {g: [o] for g, o in default_choices().items() if o}
    chosen.update({g: v for g, v in explicit.items() if g == "task"})

    def follow(group: str) -> None:
        if len(chosen.get(group, [])) == 1:
            picks = preset_choices(group, chosen[group][0])
            if group == "experiment" and "task" in picks and "task" not in explicit:
                chosen["task"] = [picks["task"]]
                follow("task")
            chosen.update({g: [v] for g, v in picks.items()})

    follow("task")
    if "experiment" in explicit:
        chosen["experiment"] = explicit["experiment"]
    follow("experiment")
    chosen.update(explicit)
    return chosen


def check_overrides(argv: list[str]) -> None:
    """Reject ``encoder=lsmt`` or ``encoder.hiden_size=3`` with the closest known name.

    Plain ``group=a``, sweeps ``group=a,b`` and ``group.key=value`` overrides are checked;
    anything with Hydra's sweep functions, globs or an explicit ``+``/``~`` is left to Hydra.
    """
    overrides = [arg.split("=", 1) for arg in argv if "=" in arg and not arg.startswith("-")]
    plain = [(k, v) for k, v in overrides if not k.startswith(("+", "~"))]
    explicit: dict[str, list[str]] = {}
    for key, value in plain:
        if key not in GROUPS or any(c in value for c in "()[]{}*$"):
            continue
        options = group_options(key)
        explicit[key] = [c for c in value.split(",") if c]
        for choice in explicit[key]:
            check_available(key, choice)
            if choice not in options:
                raise ConfigError(
                    f"Unknown option {key}={choice}. {did_you_mean(choice, options)}"
                    + _failed_plugins_hint(f"{key}={choice}")
                )
    chosen = resolve_choices(explicit)
    for group, options in chosen.items():  # a default or preset choice whose plugin failed
        if group in explicit or group not in GROUPS:
            continue  # the command line's own choices were checked above
        known = group_options(group)
        missing = [o for o in options if o not in known]
        if missing:
            raise ConfigError(
                f"The default {group}={missing[0]} is not available (known: "
                f"{', '.join(sorted(known)) or 'none'})."
                + _failed_plugins_hint(f"{group}={missing[0]}")
            )
    for key, value in plain:
        group, _, rest = key.partition(".")
        if group not in GROUPS or not rest:
            continue
        field = rest.split(".")[0]
        for option in chosen.get(group, []):
            schema = schema_of(group, option)
            if schema is None:
                continue
            fields = {f.name for f in dataclasses.fields(schema)}
            if field not in fields:
                raise ConfigError(
                    f"Unknown key {group}.{field} for {group}={option}. "
                    f"{did_you_mean(field, fields)}"
                )
            if field == rest:
                check_value_type(schema, key, field, f"{key}={value}")


def _failed_plugins_hint(option: str) -> str:
    """Where plugins failed to load, the option asked for may be one of theirs: say so; and
    name any installed package that depends on us but declares no entry point."""
    from pipeline.plugins import failures, missing_entry_point_hint

    hint = missing_entry_point_hint()
    if not failures:
        return hint
    names = ", ".join(f"'{f.name}' from '{f.provider}'" for f in failures)
    return (
        f" Note: plugin {names} failed to load (see the warning above); if it provides "
        f"{option}, fix or reinstall it." + hint
    )


def check_available(group: str, option: str) -> None:
    """``encoder=lstm`` where that name is disabled (two providers, a broken declaration):
    the registry's reason, before Hydra composes anything."""
    from pipeline import registry

    reg = registry.ALL.get(group)
    unavailable = {u.name: u for u in reg.unavailable()} if reg is not None else {}
    if option in unavailable:
        raise registry.UnavailableComponentError(unavailable[option].reason)


def print_plugins(check: bool = False) -> int:
    """Every registered component, by registry, with its provider and version; what failed
    and what looks forgotten. ``check``: also import every class and validate every config,
    one line per problem. Returns the number of problems found (failures included)."""
    from pipeline import registry
    from pipeline.plugins import check_components, failures, missing_entry_points
    from pipeline.registry import provider_version
    from pipeline.tasks import declare_built_in, kinds

    declare_built_in()
    problems = len(failures)
    for group, reg in [*registry.ALL.items(), ("task kinds", kinds)]:
        print(f"{group}:")
        for entry in reg.entries():
            where = entry.target.replace(":", ".")  # named, not imported
            print(f"  {entry.name:<16} {where}  [{provider_version(entry.provider)}]")
        for unavailable in reg.unavailable():
            print(f"  {unavailable.name:<16} DISABLED: {unavailable.reason}")
            problems += 1
    for failure in failures:
        print(f"failed: plugin '{failure.name}' from '{failure.provider}': {failure.error}")
    for name in missing_entry_points():
        print(
            f"warning: distribution '{name}' depends on seqpipe but declares no "
            '[project.entry-points."pipeline.plugins"]: none of its components are loaded. '
            "Add one (see plugins/README.md) and reinstall it."
        )
    if not check:
        print("(python -m pipeline plugins --check also imports each class and checks its config)")
        return problems
    found = check_components()  # the disabled names again, and what importing finds
    for line in found:
        print(f"problem: {line}")
    print(f"checked: {len(found)} problem(s)" if found else "checked: no problems")
    return len(found) + len(failures)


def plugins_command(args: list[str]) -> int:
    """``plugins [--check]``: the listing; with ``--check`` exit status 1 if a problem was
    found (a plugin author's first look), 0 otherwise."""
    unknown = [a for a in args if a != "--check"]
    if unknown:
        raise ConfigError(
            f"Unknown argument {unknown[0]!r} for plugins. Use: python -m pipeline plugins "
            "[--check]  (--check imports every component and validates its config)."
        )
    problems = print_plugins(check="--check" in args)
    return 1 if "--check" in args and problems else 0


def print_help(argv: list[str]) -> None:
    """``--help``: the groups and their options, then the composed config (with the command
    line's overrides applied; each key after its help text), in the header/footer of
    ``conf/config.yaml``'s ``hydra.help``.

    Hydra's own help lists every group by building a config repository per group (seconds
    here); one composition gives the same content in a fraction of that.
    """
    import yaml
    from hydra import compose, initialize_config_module

    from pipeline.config.help import config_with_help

    overrides = [a for a in argv if a not in ("--help", "-h") and not a.startswith("-")]
    check_overrides(overrides)
    text = yaml.safe_load((resources.files("conf") / "config.yaml").read_text())
    help_cfg = text.get("hydra", {}).get("help", {})
    with initialize_config_module(config_module="conf", version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    groups = "\n".join(
        f"{group}: {', '.join(sorted(group_options(group)))}" for group in sorted(GROUPS)
    )
    body = config_with_help(cfg)  # each key after its help text
    print(
        f"{help_cfg.get('header', '').rstrip()}\n"
        "== Config groups == (choose one option per group, e.g. encoder=gru)\n\n"
        f"{groups}\n\n"
        "== Config == (any value can be overridden, e.g. encoder.hidden_size=256)\n\n"
        f"{body}\n"
        f"{help_cfg.get('footer', '').rstrip()}"
    )
