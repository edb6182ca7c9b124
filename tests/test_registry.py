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


def test_a_name_two_providers_register_is_disabled_naming_both():
    reg = Registry("toy", "test_toy_dup")
    with providing("first-dist"):
        reg.register("same", config=ToyConfig)(type("A", (), {}))
        reg.register("other", config=ToyConfig)(type("O", (), {}))
    with providing("second-dist"):
        reg.register("same", config=ToyConfig)(type("B", (), {}))
    with providing("third-dist"):
        reg.register("same", config=ToyConfig)(type("C", (), {}))
    with pytest.raises(DuplicateComponentError) as err:
        reg.get("same")
    for provider in ("first-dist", "second-dist", "third-dist"):
        assert f"'{provider}'" in str(err.value)
    assert reg.get("other").provider == "first-dist"  # the other names still work
    (disabled,) = reg.unavailable()
    assert disabled.providers == ("first-dist", "second-dist", "third-dist")


@dataclass
class NoBase:  # no ComponentConfig: no 'name' field
    size: int = 1


class NotADataclass:
    size = 1


@dataclass
class FailingDefaults(ComponentConfig):
    size: int = 0

    def __post_init__(self) -> None:
        raise ValueError("size must be set")


@pytest.mark.parametrize(
    "config, says",
    [
        (NoBase, "does not derive from componentconfig"),
        (NotADataclass, "is not a dataclass"),
        (FailingDefaults, "cannot be made from its defaults"),
    ],
)
def test_a_config_that_cannot_be_a_component_config_disables_the_name(config, says):
    reg = Registry("toy", "test_toy_bad_config")
    with providing("careless-dist"):
        reg.register("bad", config=config)(type("Bad", (), {}))
        reg.declare("lazy_bad", config, "nowhere:Bad")
    for name in ("bad", "lazy_bad"):
        with pytest.raises(ConfigError) as err:
            reg.get(name)
        message = str(err.value)
        assert f"'{name}' from 'careless-dist'" in message and says in message.lower()
        assert "pipeline.registry.ComponentConfig" in message or "valid default" in message
    assert "bad.yaml" not in ConfigStore.instance().repo.get("test_toy_bad_config", {})


def test_only_our_own_components_keep_their_traceback_when_they_fail_to_build():
    from pipeline.registry import OWN_DISTRIBUTION, Entry, PluginBuildError

    class Reads:
        def __init__(self, config):
            self.width = config.width  # ToyConfig has no width

    with pytest.raises(AttributeError):  # our bug: the traceback is for us
        Entry("reads", Reads, ToyConfig, OWN_DISTRIBUTION, "toy").build(ToyConfig())
    with pytest.raises(PluginBuildError) as err:
        Entry("reads", Reads, ToyConfig, "seqpipe-reads", "toy").build(ToyConfig())
    message = str(err.value)
    assert "toy=reads" in message and "'seqpipe-reads'" in message and "'width'" in message
    assert "add it to the config dataclass ToyConfig" in message


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


# -- declare: the class is imported on first use ------------------------------------------


def write_module(folder, name: str, body: str, monkeypatch) -> None:
    (folder / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(folder))


def test_declare_stores_the_config_and_imports_the_class_on_first_use(tmp_path, monkeypatch):
    import sys

    write_module(
        tmp_path, "lazy_toy_mod", "class Deep:\n    class Inner:\n        pass\n", monkeypatch
    )
    reg = Registry("toy", "test_toy_lazy")
    with providing("lazy-dist"):
        reg.declare("beta", ToyConfig, "lazy_toy_mod:Deep.Inner")
    node = ConfigStore.instance().repo["test_toy_lazy"]["beta.yaml"].node
    assert node.name == "beta" and node.size == 4
    entry = reg.get("beta")
    assert not entry.loaded and "lazy_toy_mod" not in sys.modules  # named, not imported
    assert entry.target == "lazy_toy_mod:Deep.Inner" and entry.provider == "lazy-dist"
    assert entry.cls is sys.modules["lazy_toy_mod"].Deep.Inner and entry.loaded


@pytest.mark.parametrize(
    "body, target, message",
    [
        ("raise RuntimeError('boom')\n", "lazy_bad_a:Thing", "RuntimeError: boom"),
        ("", "lazy_bad_b:Missing", "AttributeError"),
        ("thing = 3\n", "lazy_bad_c:thing", "which is not a class"),
    ],
)
def test_a_declared_class_that_cannot_load_names_component_and_provider(
    tmp_path, monkeypatch, body, target, message
):
    from pipeline.registry import PluginImportError

    write_module(tmp_path, target.split(":")[0], body, monkeypatch)
    reg = Registry("toy", "test_toy_lazy_bad")
    with providing("broken-dist"):
        reg.declare("gamma", ToyConfig, target)
    with pytest.raises(PluginImportError) as err:
        _ = reg.get("gamma").cls
    assert "'gamma' from 'broken-dist'" in str(err.value) and message in str(err.value)


def test_declare_rejects_a_target_without_module_and_class():
    reg = Registry("toy", "test_toy_target")
    reg.declare("delta", ToyConfig, "just_a_module")
    with pytest.raises(ConfigError, match="module:QualName"):
        reg.get("delta")


class Declared:
    """A module-level class, declared by name and then decorated (next test)."""


def test_decorating_a_declared_class_binds_it_and_another_class_is_a_duplicate():
    reg = Registry("toy", "test_toy_both")
    reg.declare("eps", ToyConfig, f"{__name__}:Declared")
    # The module holding a declared class may decorate it too: the same component.
    assert reg.register("eps", config=ToyConfig)(Declared) is Declared
    assert reg.get("eps").cls is Declared
    reg.register("eps", config=ToyConfig)(type("Other", (), {}))
    with pytest.raises(DuplicateComponentError, match="'eps'"):
        reg.get("eps")


def test_a_deferred_config_store_stores_the_options_only_when_asked():
    """``predict``, ``generate`` and ``inspect`` load the plugins inside
    ``deferred_config_store``: the registries fill, Hydra's ConfigStore does not, until
    ``register_core_configs`` (which every command that composes a config calls)."""
    from pipeline.config.schemas import register_core_configs
    from pipeline.registry import deferred_config_store

    reg = Registry("toy", "test_toy_deferred")
    with deferred_config_store():
        reg.register("kept", config=ToyConfig)(type("Kept", (), {}))
        reg.register("clash", config=ToyConfig)(type("One", (), {}))
    reg.register("clash", config=ToyConfig)(type("Two", (), {}))  # disabled: never stored
    assert reg.get("kept").cls.__name__ == "Kept"
    assert "test_toy_deferred" not in ConfigStore.instance().repo
    register_core_configs()
    assert set(ConfigStore.instance().repo["test_toy_deferred"]) == {"kept.yaml"}
    reg.register("after", config=ToyConfig)(type("After", (), {}))  # outside: stored at once
    assert "after.yaml" in ConfigStore.instance().repo["test_toy_deferred"]
