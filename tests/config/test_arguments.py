"""The one key=value parser of predict, generate and evaluate."""

from dataclasses import dataclass, field

import pytest

from pipeline.config.arguments import parse_key_values
from pipeline.errors import ConfigError


@dataclass
class Args:
    model: str = ""
    text: list[str] = field(default_factory=list)
    batch_size: int = 8
    temperature: float = 1.0
    quiet: bool = False


def test_values_take_their_fields_types_and_lists_collect_repeats():
    args, forwarded = parse_key_values(
        "cmd",
        ["model=m.pt", "text=a", "text=b=c", "batch_size=3", "temperature=0.5", "quiet=true"],
        Args,
    )
    assert args == Args("m.pt", ["a", "b=c"], 3, 0.5, True) and forwarded == []


def test_forwarded_keys_come_back_in_order():
    args, forwarded = parse_key_values(
        "cmd", ["data.x=1", "model=m", "data.y=2"], Args, forward=lambda k: k.startswith("data.")
    )
    assert args.model == "m" and forwarded == ["data.x=1", "data.y=2"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["model"], "cmd takes key=value arguments, got 'model'. usage here"),
        (["modle=x"], "Unknown argument modle for cmd. Did you mean 'model'"),
        (["batch_size=many"], "cmd batch_size='many': expected an integer"),
        (["temperature=hot"], "cmd temperature='hot': expected a number"),
        (["quiet=maybe"], "cmd quiet='maybe': expected true or false"),
    ],
)
def test_mistakes_are_one_clear_message(argv, message):
    with pytest.raises(ConfigError) as caught:
        parse_key_values("cmd", argv, Args, usage="usage here")
    assert message in str(caught.value)


def test_fields_the_command_fills_itself_are_not_arguments():
    with pytest.raises(ConfigError, match="Unknown argument text for cmd"):
        parse_key_values("cmd", ["text=a"], Args, not_arguments=("text",))
