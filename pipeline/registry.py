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

from pipeline.errors import ConfigError, PipelineError, did_you_mean

T = TypeVar("T")

#: The provider (distribution name) whose plugin module is being imported right now.
_current_provider: str = "pipeline"

#: Whether registrations keep their config nodes out of Hydra's ConfigStore for now
#: (:func:`deferred_config_store`), and the (registry, entry) pairs they kept.
_deferring: bool = False
_deferred: list[tuple[Registry[Any], Entry[Any]]] = []


@contextmanager
def deferred_config_store() -> Iterator[None]:
    """Registrations inside the block store their config nodes in Hydra's ConfigStore only
    when :func:`store_deferred` runs (``register_core_configs`` calls it).

    Commands that compose no config (``predict``, ``generate``, ``inspect``) load the plugins
    inside it: building ~40 structured config nodes and importing Hydra would cost them
    0.3 to 0.5 s of a start that should take about two seconds."""
    global _deferring
    previous, _deferring = _deferring, True
    try:
        yield
    finally:
        _deferring = previous


def store_deferred() -> None:
    """Store the config nodes that :func:`deferred_config_store` kept (idempotent)."""
    while _deferred:
        registry, entry = _deferred.pop(0)
        if registry._entries.get(entry.name) is entry:  # not disabled by a later clash
            registry._store(entry)


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
    first use of ``entry.cls``; ``entry.target`` names it without importing it. ``group`` is
    the registry's config group (``encoder``), for messages.
    """

    def __init__(
        self, name: str, cls: type[T] | str, config: type, provider: str, group: str = ""
    ) -> None:
        self.name = name
        self.config = config
        self.provider = provider
        self.group = group
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

    def build(self, *args: Any, **kwargs: Any) -> T:
        """An instance of the class. A third party's class that fails to build is one
        :class:`PluginBuildError` naming it; our own (``seqpipe``) keep their traceback:
        they are our bugs."""
        cls = self.cls
        if self.provider == OWN_DISTRIBUTION:
            return cls(*args, **kwargs)
        try:
            return cls(*args, **kwargs)
        except PipelineError:
            raise
        except Exception as error:  # anything inside the plugin's __init__
            raise PluginBuildError(_build_failure(self, error)) from error

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.target!r}, provider={self.provider!r})"


#: The distribution of the core and its built-in components.
OWN_DISTRIBUTION = "seqpipe"


def provider_version(provider: str) -> str:
    """``seqpipe 0.1.0``: a provider and its installed version (the name alone where it is
    not an installed distribution: a component registered by a script)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{provider} {version(provider)}"
    except PackageNotFoundError:
        return provider


class PluginImportError(PipelineError):
    """A declared component's class could not be imported."""


class PluginBuildError(PipelineError):
    """A plugin's component could not be built from its config."""


def _import_target(entry: Entry[Any]) -> type:
    """Import ``module:QualName``; a failure names the component and its provider."""
    module_name, _, qualname = entry.target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as error:  # any failure inside the plugin's module
        named = f"The component '{entry.name}' from '{entry.provider}'"
        said = f"{type(error).__name__}: {error}"
        absent = isinstance(error, AttributeError) or (
            isinstance(error, ModuleNotFoundError) and error.name == module_name
        )
        if absent:  # the module or the class the declaration names does not exist
            raise PluginImportError(
                f"{named} is declared as {entry.target}, which does not exist ({said}). Fix "
                f"the target in the plugin's declare(...) call, or report it to "
                f"'{entry.provider}'."
            ) from error
        raise PluginImportError(
            f"{named} could not be loaded from {entry.target}: {said}. Reinstall or upgrade "
            f"'{entry.provider}', or choose another component."
        ) from error
    if not isinstance(found, type):
        raise PluginImportError(
            f"The component '{entry.name}' from '{entry.provider}' is declared as "
            f"{entry.target}, which is not a class. Fix the plugin's declare(...) call."
        )
    return found


def _build_failure(entry: Entry[Any], error: Exception) -> str:
    """What went wrong building a plugin's component, and what to do about it."""
    chosen = f"{entry.group}={entry.name}" if entry.group else f"'{entry.name}'"
    said = f"{type(error).__name__}: {error}"
    where = f"{chosen} ({entry.target} from '{entry.provider}') could not be built: {said}."
    if isinstance(error, AttributeError) and isinstance(getattr(error, "obj", None), entry.config):
        return (
            f"{where} The plugin's config lacks a field its class reads ('{error.name}'): add "
            f"it to the config dataclass {entry.config.__qualname__}, or report it to "
            f"'{entry.provider}'."
        )
    return (
        f"{where} Check the {entry.group or 'component'}'s settings, or report it to "
        f"'{entry.provider}' (HYDRA_FULL_ERROR=1 shows the traceback)."
    )


class UnavailableComponentError(ConfigError):
    """A registered name that cannot be used: two providers, or a broken declaration."""


#: Kept for plugins that catch it: a name registered twice is now an unavailable name.
DuplicateComponentError = UnavailableComponentError


@dataclass(frozen=True)
class Unavailable:
    """A name that was registered but is disabled, the providers involved and why."""

    name: str
    providers: tuple[str, ...]
    reason: str  # the whole message: what is wrong and what to do
    registrations: tuple[str, ...] = ()  # a clash: "'provider' (module:Class)" of each


class Registry(Generic[T]):
    """Components of one kind (encoders, poolers, ...), keyed by name.

    A plugin's mistake (a config not derived from ``base``, a malformed target, a name two
    providers register) disables that name only: :meth:`get` raises why, every other name
    and command keeps working, and ``python -m pipeline plugins`` lists it.
    """

    def __init__(self, kind: str, group: str, store: bool = True, base: type | None = None):
        self.kind = kind  # human name, e.g. "encoder"
        self.group = group  # Hydra config group, e.g. "encoder"
        self.store = store  # whether each option's config goes into Hydra's ConfigStore
        self.base = base  # the class every config derives from (None: ComponentConfig)
        self._entries: dict[str, Entry[T]] = {}
        self._unavailable: dict[str, Unavailable] = {}

    def register(self, name: str, config: type) -> Callable[[type[T]], type[T]]:
        """Class decorator: register ``cls`` under ``name`` with its config dataclass."""

        def decorator(cls: type[T]) -> type[T]:
            declared = self._entries.get(name)
            target = f"{cls.__module__}:{cls.__qualname__}"
            if declared is not None and not declared.loaded and declared.target == target:
                declared._cls = cls  # declared lazily, now imported: the same component
                return cls
            self._add(Entry(name, cls, config, _current_provider, self.group))
            return cls

        return decorator

    def declare(self, name: str, config: type, target: str) -> None:
        """Register ``name`` now, its class (``"module:QualName"``) imported on first use."""
        self._add(Entry(name, target, config, _current_provider, self.group))

    def _add(self, entry: Entry[T]) -> None:
        """Store the entry and its config node; a mistake disables the name instead."""
        problem = self._config_problem(entry) or _target_problem(entry)
        if problem:
            self._disable(entry.name, (entry.provider,), problem, (_provided(entry),))
        elif entry.name in self._unavailable or entry.name in self._entries:
            self._clash(entry)
        else:
            self._entries[entry.name] = entry
            if self.store and _deferring:
                _deferred.append((self, entry))
            elif self.store:
                self._store(entry)

    def _store(self, entry: Entry[T]) -> None:
        """The entry's config as an option of this registry's group in Hydra's ConfigStore."""
        from hydra.core.config_store import ConfigStore

        ConfigStore.instance().store(
            group=self.group,
            name=entry.name,
            node=entry.config(name=entry.name),
            provider=entry.provider,
        )

    def _config_problem(self, entry: Entry[T]) -> str | None:
        """Why ``entry.config`` cannot be this registry's config, or None."""
        config, base = entry.config, self.base or ComponentConfig
        what = f"The {self.kind} '{entry.name}' from '{entry.provider}' cannot be used: its config"
        fix = f"Derive it from {base.__module__}.{base.__qualname__}"
        if not isinstance(config, type) or not dataclasses.is_dataclass(config):
            return f"{what} {config!r} is not a dataclass. {fix} and decorate it with @dataclass."
        named = f"{what} {config.__module__}.{config.__qualname__}"
        if not issubclass(config, base):
            return (
                f"{named} does not derive from {base.__qualname__} (which gives it the 'name' "
                f"field the group option sets). {fix}: @dataclass class "
                f"{config.__qualname__}({base.__qualname__}): ..."
            )
        try:
            config(name=entry.name)
        except Exception as error:  # a field without a default, a failing __post_init__
            return (
                f"{named} cannot be made from its defaults ({type(error).__name__}: {error}). "
                "Give every field a valid default, e.g. describe('help', 128, min=1)."
            )
        return None

    def _clash(self, entry: Entry[T]) -> None:
        """A name registered again: the same component is ignored; another one disables
        the name, naming every provider."""
        other = self._entries.pop(entry.name, None)
        if other is not None and (other.target, other.provider) == (entry.target, entry.provider):
            self._entries[entry.name] = other
            return
        before = self._unavailable.get(entry.name)
        if other is not None:
            before = Unavailable(entry.name, (other.provider,), "", (_provided(other),))
        assert before is not None  # a clash: the name was registered or disabled already
        registrations = (*before.registrations, _provided(entry))
        self._disable(
            entry.name,
            (*before.providers, entry.provider),
            f"The {self.kind} '{entry.name}' is registered more than once, by "
            f"{' and '.join(registrations)}, so it is disabled (every other {self.kind} still "
            "works). Uninstall one of them, or rename the component in one.",
            registrations,
        )

    def _disable(
        self, name: str, providers: tuple[str, ...], reason: str, registrations: tuple[str, ...]
    ) -> None:
        self._unavailable[name] = Unavailable(name, providers, reason, registrations)

    def unavailable(self) -> list[Unavailable]:
        """The disabled names, each with why."""
        return [self._unavailable[n] for n in sorted(self._unavailable)]

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; an unknown name lists the known ones and the closest, a
        disabled one says why."""
        if name in self._unavailable:
            raise UnavailableComponentError(self._unavailable[name].reason)
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


def _provided(entry: Entry[Any]) -> str:
    return f"'{entry.provider}' ({entry.target})"


def _target_problem(entry: Entry[Any]) -> str | None:
    """Why a declared ``module:QualName`` target is malformed, or None."""
    parts = entry.target.split(":")
    if len(parts) == 2 and all(parts):
        return None
    return (
        f"The component '{entry.name}' from '{entry.provider}' is declared with the target "
        f"{entry.target!r}, which is not 'module:QualName'. Fix the plugin's declare(...) call, "
        "e.g. declare('my_rnn', MyConfig, 'my_pkg.rnn:MyEncoder')."
    )


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
            if OmegaConf.get_type(node) not in (schema, dict):  # a subclass's node (a task
                node = OmegaConf.create(OmegaConf.to_container(node))  # kind's own config)
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
