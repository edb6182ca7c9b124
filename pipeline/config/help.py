"""``--help``'s config section with each key's help text: the composed config as YAML, each
key of a section whose schema is known preceded by its help (``describe(...)`` metadata),
wrapped as a comment. Only the chosen options' schemas are read: start-up stays fast."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: A section's own key in YAML: two spaces, the name, a colon.
KEY_LINE = re.compile(r"^  ([A-Za-z_][\w]*):")
WIDTH = 92


def help_texts(schema: type | None) -> dict[str, str]:
    """Field name -> help text of a config dataclass (fields without one left out)."""
    if schema is None or not dataclasses.is_dataclass(schema):
        return {}
    return {f.name: f.metadata["help"] for f in dataclasses.fields(schema) if "help" in f.metadata}


def section_schema(group: str, section: Any) -> type | None:
    """The schema behind a composed section: its group's option, by the section's ``name``."""
    from pipeline.config.groups import schema_of
    from pipeline.config.schemas import TaskConfig

    if group == "task":
        return TaskConfig
    option = section.get("name") if isinstance(section, DictConfig) else None
    try:
        return schema_of(group, str(option)) if option is not None else schema_of(group, "")
    except Exception:  # a plugin's broken schema must not break --help
        return None


def annotate(group: str, yaml_text: str, helps: dict[str, str]) -> list[str]:
    """The YAML of section ``group``, each of its keys after its help as a comment."""
    lines: list[str] = []
    for line in yaml_text.splitlines():
        found = KEY_LINE.match(line)
        if found and found.group(1) in helps:
            text = " ".join(helps[found.group(1)].split())
            lines += textwrap.wrap(
                text,
                WIDTH,
                initial_indent="  # ",
                subsequent_indent="  #   ",
                break_on_hyphens=False,
                break_long_words=False,
            )
        lines.append(line)
    return lines


def config_with_help(cfg: DictConfig) -> str:
    """The whole composed config as YAML, with the help text of every key that has one."""
    from pipeline.config.groups import GROUPS

    out: list[str] = []
    for key in cfg:
        section = cfg[key]
        text = OmegaConf.to_yaml({key: section}).rstrip("\n")
        helps = help_texts(section_schema(str(key), section)) if key in GROUPS else {}
        out += annotate(str(key), text, helps) if helps else text.splitlines()
    return "\n".join(out) + "\n"
