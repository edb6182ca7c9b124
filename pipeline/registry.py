"""Named registries of components, each backed by Hydra's ConfigStore.

A component is declared once: a class plus a config dataclass. Registering it stores the
class here and the dataclass in Hydra's ConfigStore as an option of the registry's config
group, so ``encoder=lstm encoder.hidden_size=256`` works with no YAML file.

Two ways to register, same result:

* ``@encoders.register("lstm", config=RNNConfig)`` on the class: simple, but the module
  holding the class (and so torch) is imported when the plugin loads.
* ``encoders.declare("lstm", RNNConfig, "my_pkg.rnn:LSTMEncoder")``: the config dataclass
  is stored now; the class is imported the first time it is needed. A plugin whose configs
  live in a module without torch then costs nothing at start-up, so ``--help`` and a
  config error stay fast.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hydra.core.config_store import ConfigStore

from pipeline.errors import ConfigError, PipelineError, did_you_mean

T = TypeVar("T")

#: The provider (distribution name) whose plugin module is being imported right now.
_current_provider: str = "pipeline"


@contextmanager
def providing(provider: str) -> Iterator[None]:
    """Attribute every registration made inside the block to ``provider``."""
    global _current_provider
    previous, _current_provider = _current_provider, provider
    try:
        yield
    finally:
        _current_provider = previous


class Entry(Generic[T]):
    """One registered component: its name, class, config dataclass and provider.

    ``cls`` may be given as a ``"module:QualName"`` string: the class is then imported on
    first use of ``entry.cls``; ``entry.target`` names it without importing it.
    """

    def __init__(self, name: str, cls: type[T] | str, config: type, provider: str) -> None:
        self.name = name
        self.config = config
        self.provider = provider
        self._cls: type[T] | None = None if isinstance(cls, str) else cls
        self.target = cls if isinstance(cls, str) else f"{cls.__module__}:{cls.__qualname__}"

    @property
    def loaded(self) -> bool:
        """Whether the class is imported already."""
        return self._cls is not None

    @property
    def cls(self) -> type[T]:
        if self._cls is None:
            self._cls = _import_target(self)
        return self._cls

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.target!r}, provider={self.provider!r})"


class PluginImportError(PipelineError):
    """A declared component's class could not be imported."""


def _import_target(entry: Entry[Any]) -> type:
    """Import ``module:QualName``; a failure names the component and its provider."""
    module_name, _, qualname = entry.target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as error:  # any failure inside the plugin's module
        raise PluginImportError(
            f"The component '{entry.name}' from '{entry.provider}' could not be loaded from "
            f"{entry.target}: {type(error).__name__}: {error}. Reinstall or upgrade "
            f"'{entry.provider}', or choose another component."
        ) from error
    if not isinstance(found, type):
        raise PluginImportError(
            f"The component '{entry.name}' from '{entry.provider}' is declared as "
            f"{entry.target}, which is not a class. Fix the plugin's declare(...) call."
        )
    return found


class DuplicateComponentError(PipelineError):
    """Two providers registered the same name in one registry."""


class Registry(Generic[T]):
    """Components of one kind (encoders, poolers, ...), keyed by name."""

    def __init__(self, kind: str, group: str, store: bool = True) -> None:
        self.kind = kind  # human name, e.g. "encoder"
        self.group = group  # Hydra config group, e.g. "encoder"
        self.store = store  # whether each option's config goes into Hydra's ConfigStore
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, config: type) -> Callable[[type[T]], type[T]]:
        """Class decorator: register ``cls`` under ``name`` with its config dataclass."""
        _check_config(self.kind, name, config)

        def decorator(cls: type[T]) -> type[T]:
            declared = self._entries.get(name)
            target = f"{cls.__module__}:{cls.__qualname__}"
            if declared is not None and not declared.loaded and declared.target == target:
                declared._cls = cls  # declared lazily, now imported: the same component
                return cls
            self._add(Entry(name, cls, config, _current_provider))
            return cls

        return decorator

    def declare(self, name: str, config: type, target: str) -> None:
        """Register ``name`` now, its class (``"module:QualName"``) imported on first use."""
        _check_config(self.kind, name, config)
        if target.count(":") != 1 or not all(target.split(":")):
            raise TypeError(f"{self.kind} '{name}': target must be 'module:QualName': {target!r}")
        self._add(Entry(name, target, config, _current_provider))

    def _add(self, entry: Entry[T]) -> None:
        """Store the entry and its config node; a name taken by another is an error."""
        if entry.name in self._entries:
            other = self._entries[entry.name]
            raise DuplicateComponentError(
                f"Two plugins register the {self.kind} '{entry.name}': '{other.provider}' "
                f"({other.target}) and '{entry.provider}' ({entry.target}). Uninstall one of "
                "them or rename its component."
            )
        self._entries[entry.name] = entry
        if not self.store:
            return
        config = entry.config
        node = config(name=entry.name) if "name" in _field_names(config) else config()
        ConfigStore.instance().store(
            group=self.group, name=entry.name, node=node, provider=entry.provider
        )

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; an unknown name lists the known ones and the closest."""
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"Unknown {self.kind} '{name}' ({self.group}={name}). "
                f"{did_you_mean(name, self._entries)}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def config_from(self, cfg: Any) -> Any:
        """Turn a composed config node (with its ``name``) into the registered dataclass.

        Range checks declared in field metadata (``min``, ``max``, ``choices``) run here.
        """
        from omegaconf import OmegaConf

        values = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
        entry = self.get(values["name"])
        known = _field_names(entry.config)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"Unknown key {self.group}.{unknown[0]} for {self.kind} '{entry.name}'. "
                f"{did_you_mean(unknown[0], known)}"
            )
        return to_dataclass(entry.config, values, self.group)


def _check_config(kind: str, name: str, config: type) -> None:
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{kind} '{name}': config must be a dataclass, got {config!r}")


def _field_names(config: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config)}


def validate(config: Any, prefix: str) -> None:
    """Check a config dataclass against the bounds declared in its fields' metadata.

    ``field(metadata={"min": 1})`` means ">= 1"; ``"max"`` is inclusive unless
    ``"max_exclusive": True``; ``"choices"`` lists the allowed values.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        meta = f.metadata
        key = f"{prefix}.{f.name}"
        if value is None:
            continue
        if "choices" in meta and value not in meta["choices"]:
            hint = did_you_mean(str(value), meta["choices"])
            raise ConfigError(f"{key}={value!r} is not a valid choice. {hint}")
        if "min" in meta and value < meta["min"]:
            raise ConfigError(f"{key}={value!r} is too small: it must be >= {meta['min']}.")
        if "max" in meta:
            limit = meta["max"]
            if meta.get("max_exclusive") and value >= limit:
                raise ConfigError(f"{key}={value!r} is too large: it must be < {limit}.")
            if not meta.get("max_exclusive") and value > limit:
                raise ConfigError(f"{key}={value!r} is too large: it must be <= {limit}.")


def to_dataclass(
    schema: type[T],
    node: Any,
    prefix: str,
    *,
    missing_hint: str = "",
    fields_at: Callable[[list[str]], type] | None = None,
) -> T:
    """The one conversion of a config section into its checked dataclass.

    ``node`` is a composed node, a plain dict, or already a ``schema``. OmegaConf checks the
    types; an unknown key is named with the closest known field (``fields_at(key parts)``
    gives the dataclass a nested key belongs to); a missing value says ``missing_hint``;
    then :func:`validate` checks the bounds declared in the fields.
    """
    if isinstance(node, schema):
        config = node
    else:
        from omegaconf import OmegaConf
        from omegaconf.errors import (
            ConfigAttributeError,
            ConfigKeyError,
            MissingMandatoryValue,
            OmegaConfBaseException,
        )

        try:
            node = node if OmegaConf.is_config(node) else OmegaConf.create(dict(node))
            merged = OmegaConf.merge(OmegaConf.structured(schema), node)
            _refuse_extra_keys(merged, prefix)
            config = OmegaConf.to_object(merged)
        except (ConfigKeyError, ConfigAttributeError) as e:
            parts = str(e.full_key or e.key).split(".")
            known = _field_names(fields_at(parts) if fields_at else schema)
            raise ConfigError(
                f"Unknown key {prefix}.{'.'.join(parts)}. {did_you_mean(parts[-1], known)}"
            ) from None
        except MissingMandatoryValue as e:
            raise ConfigError(f"{prefix}.{e.full_key} is required{missing_hint}.") from None
        except OmegaConfBaseException as e:
            key = e.full_key or e.key or ""
            message = str(e.msg).splitlines()[0] if e.msg else type(e).__name__
            where = f"{prefix}.{key}" if key else prefix
            raise ConfigError(f"Invalid value for {where}: {message.rstrip('.')}.") from None
    validate(config, prefix)
    return config


#: Keys Hydra's ``instantiate`` reads: meaningless where the pipeline instantiates nothing.
INSTANTIATE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


def _refuse_extra_keys(node: Any, prefix: str) -> None:
    """Keys a structured node holds beyond its dataclass's fields (``+trainer.foo=1``,
    ``+trainer._target_=...``): OmegaConf keeps them through a merge, then ``to_object``
    drops them without a word, so they are refused here."""
    from omegaconf import DictConfig, OmegaConf

    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return
    known = _field_names(schema)
    for key in node:
        where = f"{prefix}.{key}"
        if key not in known:
            if key in INSTANTIATE_KEYS:
                raise ConfigError(not_instantiated(where))
            raise ConfigError(f"Unknown key {where}. {did_you_mean(str(key), known)}")
        value = None if OmegaConf.is_missing(node, key) else node[key]
        if isinstance(value, DictConfig):
            _refuse_extra_keys(value, where)


def not_instantiated(where: str) -> str:
    """The message for ``_target_`` (or another ``instantiate`` key) where nothing is built."""
    section = where.rpartition(".")[0] or "the config's root"
    return (
        f"{where} is not used: nothing is instantiated from {section} (components are chosen "
        f"by name, e.g. encoder=lstm), so it would be silently ignored. Remove +{where}."
    )


def describe(help_text: str, default: Any = dataclasses.MISSING, **bounds: Any) -> Any:
    """A dataclass field with help text and optional bounds (min, max, choices)."""
    metadata = {"help": help_text, **bounds}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class ComponentConfig:
    """Base of every component config: ``name`` is the registry name Hydra selected.

    It lives here, not in ``pipeline.contracts``, so that config modules need no torch.
    """

    name: str = describe("registered name of the component (set by the group option)", "")

    def suggested_settings(self) -> dict[str, Any]:
        """Settings of other groups this component trains best with, e.g.
        ``{"optimizer.lr": 5e-4}``: a run applies each where the user left the default, and
        prints it (``pipeline.config.suggestions``). None by default."""
        return {}


# The registries every plugin fills. The core builds components only through these.
tokenizers: Registry[Any] = Registry("tokenizer", "tokenizer")
embeddings: Registry[Any] = Registry("embedding", "embedding")
encoders: Registry[Any] = Registry("encoder", "encoder")
poolers: Registry[Any] = Registry("pooler", "pooler")
heads: Registry[Any] = Registry("head", "head")

ALL: dict[str, Registry[Any]] = {
    r.group: r for r in (tokenizers, embeddings, encoders, poolers, heads)
}
