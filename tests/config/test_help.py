"""``--help`` shows each key's help text from its schema (issue 16)."""

from __future__ import annotations

import dataclasses

from pipeline.config.cli import print_help
from pipeline.config.schemas import OptimizerConfig, TrainerConfig


def comment_before(lines: list[str], key_line: str) -> str:
    """The comment lines right above ``key_line``, joined as one text."""
    at = lines.index(key_line)
    comment: list[str] = []
    for line in reversed(lines[:at]):
        if not line.startswith("  #"):
            break
        comment.insert(0, line.removeprefix("  #").strip())
    return " ".join(comment)


def test_help_shows_each_keys_help_text(capsys):
    print_help(["--help", "optimizer=sgd", "optimizer.lr=0.5"])
    lines = capsys.readouterr().out.splitlines()
    assert "  lr: 0.5" in lines
    for schema, section in ((OptimizerConfig, "optimizer"), (TrainerConfig, "trainer")):
        start = lines.index(f"{section}:")
        keys = {}
        for line in lines[start + 1 :]:
            if not line.startswith("  "):
                break
            if not line.startswith("  #") and not line.startswith("   "):
                keys[line.split(":")[0].strip()] = line
        for field in dataclasses.fields(schema):
            if "help" in field.metadata and field.name in keys:
                text = " ".join(field.metadata["help"].split())
                assert comment_before(lines, keys[field.name]) == text, field.name
