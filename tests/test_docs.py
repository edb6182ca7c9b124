"""Every example of the plugin guide (plugins/README.md) runs and passes its kind's kit, and
the guide names the distribution to depend on with a version bound."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from pipeline import registry
from pipeline.testing import (
    check_embedding,
    check_encoder,
    check_head,
    check_pooler,
    check_tokenizer,
)

GUIDE = Path(__file__).resolve().parents[1] / "plugins" / "README.md"
KITS = {
    "tokenizer": (registry.tokenizers, check_tokenizer, {}),
    "embedding": (registry.embeddings, check_embedding, {"dim": 8}),
    "pooler": (registry.poolers, check_pooler, {}),
    "head": (registry.heads, check_head, {"hidden_size": 8}),
}


def code_blocks(text: str) -> list[str]:
    """The guide's indented code blocks, un-indented."""
    blocks, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("    ") or (current and not line.strip()):
            current.append(line[4:])
        elif current:
            blocks.append("\n".join(current).strip("\n"))
            current = []
    return blocks


def example(first_line: str) -> str:
    """The one code block of the guide that starts with ``first_line``."""
    found = [b for b in code_blocks(GUIDE.read_text()) if b.startswith(first_line)]
    assert len(found) == 1, f"the guide has {len(found)} blocks starting with {first_line!r}"
    return found[0]


def run_once(code: str, name: str, reg: registry.Registry) -> None:
    """Execute an example (registering a name twice would be a duplicate)."""
    if name not in reg:
        module = types.ModuleType(f"guide_{name}")  # dataclasses look their module up
        sys.modules[module.__name__] = module
        exec(compile(code, str(GUIDE), "exec"), module.__dict__)


def test_the_guide_has_an_example_for_every_kind():
    found = re.findall(r"^    # example: (\w+) (\w+)$", GUIDE.read_text(), flags=re.M)
    assert {kind for kind, _ in found} == set(KITS)


@pytest.mark.parametrize("kind", sorted(KITS))
def test_each_guide_example_passes_its_kit(kind):
    reg, kit, fields = KITS[kind]
    name = re.search(rf"^    # example: {kind} (\w+)$", GUIDE.read_text(), flags=re.M).group(1)
    run_once(example(f"# example: {kind} {name}"), name, reg)
    report = kit(name, **fields)
    assert report.ok, str(report)
    assert report.passed


def test_the_guide_example_encoder_passes_the_whole_kit():
    run_once(example("# my_encoders/plugin.py"), "my_gru", registry.encoders)
    report = check_encoder("my_gru", hidden_size=8)
    assert report.ok, str(report)
    assert {"causal", "state", "padding"} <= set(report.passed)


def test_the_guide_depends_on_seqpipe_with_a_version_bound():
    text = GUIDE.read_text()
    assert 'dependencies = ["seqpipe>=0.1"]' in text
    assert 'dependencies = ["seqpipe"]' not in text
    pyproject = GUIDE.parents[1] / "examples" / "encoder-plugin" / "pyproject.toml"
    assert '"seqpipe>=0.1"' in pyproject.read_text()
