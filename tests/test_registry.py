"""The registry: one declaration stores the class and its config in Hydra's ConfigStore."""

from dataclasses import dataclass

import pytest
from hydra.core.config_store import ConfigStore

from pipeline.contracts import ComponentConfig
from pipeline.errors import ConfigError
from pipeline.registry import DuplicateComponentError, Registry, describe, providing, validate


@dataclass
class ToyConfig(ComponentConfig):
    size: int = describe("a size", 4, min=1)
    rate: float = describe("a rate", 0.5, min=0.0, max=1.0, max_exclusive=True)
    mode: str = describe("a mode", "a", choices=["a", "b"])


def test_register_stores_class_and_config_option():
    reg = Registry("toy", "test_toy_group")

    @reg.register("alpha", config=ToyConfig)
    class Alpha:
        pass

    assert reg.get("alpha").cls is Alpha
    assert "alpha.yaml" in ConfigStore.instance().repo["test_toy_group"]
    node = ConfigStore.instance().repo["test_toy_group"]["alpha.yaml"].node
    assert node.name == "alpha" and node.size == 4


def test_duplicate_names_name_both_providers():
    reg = Registry("toy", "test_toy_dup")
    with providing("first-dist"):
        reg.register("same", config=ToyConfig)(type("A", (), {}))
    with providing("second-dist"), pytest.raises(DuplicateComponentError) as err:
        reg.register("same", config=ToyConfig)(type("B", (), {}))
    assert "first-dist" in str(err.value) and "second-dist" in str(err.value)


def test_unknown_name_suggests_the_closest():
    reg = Registry("encoder", "test_toy_unknown")
    for name in ("lstm", "gru"):
        reg.register(name, config=ToyConfig)(type(name, (), {}))
    with pytest.raises(ConfigError, match="Did you mean 'lstm'.*Known: gru, lstm"):
        reg.get("lsmt")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"size": 0}, "test.size=0 is too small"),
        ({"rate": 1.0}, "test.rate=1.0 is too large: it must be < 1.0"),
        ({"rate": -0.1}, "test.rate=-0.1 is too small"),
        ({"mode": "c"}, "not a valid choice"),
    ],
)
def test_bounds_from_field_metadata(fields, message):
    with pytest.raises(ConfigError, match=message):
        validate(ToyConfig(**fields), "test")


def test_config_from_rejects_unknown_keys():
    reg = Registry("toy", "test_toy_keys")
    reg.register("alpha", config=ToyConfig)(type("Alpha", (), {}))
    assert reg.config_from({"name": "alpha", "size": 3}).size == 3
    with pytest.raises(ConfigError, match="Unknown key test_toy_keys.sise.*Did you mean 'size'"):
        reg.config_from({"name": "alpha", "sise": 3})
