"""Start a model from a trained language model (``model.init_from``, ULMFiT, Dai & Le 2015):
its tokenizer (vocabulary), embedding and encoder carried over exactly; head and pooler fresh.

Before any data is read, :func:`check_fits` compares the source's config with this run's and
names every difference in one error, with the override that fixes each: the tokenizer's
(its vocabulary), the embedding's and the encoder's settings must be the source's.
Regularisation (every setting named ``*dropout*``) may differ: fine-tuning often uses other
dropouts. A bidirectional encoder may start from a left-to-right language model: its forward
direction is the language model's, its backward direction starts fresh or from a backward
language model (``model.init_from_backward``, one trained on reversed text). Where a stacked
layer reads both directions, the columns of its input weights that read the other direction
start at zero, so each direction computes exactly what its language model did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.errors import ConfigError, PipelineError
from pipeline.model.checkpoint import Checkpoint

#: The sections whose settings the source and this run must share.
SHARED = ("tokenizer", "embedding", "encoder")
#: ``encoder.layers.<layer>.<direction>.<parameter>``: the recurrent encoders' layout.
RNN_KEY = re.compile(r"encoder\.layers\.(\d+)\.(\d+)\.(\w+)")
SETTINGS = {"forward": "model.init_from", "backward": "model.init_from_backward"}


@dataclass
class Pretrained:
    """A trained model to start from, loaded: its checkpoint, its tokenizer, its origin."""

    direction: str  # "forward" (model.init_from) or "backward" (model.init_from_backward)
    reference: str  # as the user gave it
    path: str  # the checkpoint's path or model URI
    checkpoint: Checkpoint
    tokenizer: Any
    run_id: str | None = None

    @property
    def setting(self) -> str:
        return SETTINGS[self.direction]

    @property
    def config(self) -> dict[str, Any]:
        return self.checkpoint.config if isinstance(self.checkpoint.config, dict) else {}


@dataclass
class InitFrom:
    """This run's sources (``None`` each where not given). Resumed, no source is loaded
    again (``loaded`` False): the weights come from ``last.pt``; only its tags remain."""

    forward: Pretrained | None = None
    backward: Pretrained | None = None
    tags: dict[str, str] = field(default_factory=dict)
    loaded: bool = True

    @classmethod
    def of(cls, forward: Pretrained | None, backward: Pretrained | None) -> InitFrom:
        tags: dict[str, str] = {}
        for source in (forward, backward):
            if source is not None:
                prefix = source.setting.removeprefix("model.")
                tags[f"{prefix}.path"] = source.path
                if source.run_id:
                    tags[f"{prefix}.run_id"] = source.run_id
        return cls(forward, backward, tags)

    @property
    def tokenizer(self) -> Any:
        """The sources' tokenizer (the two directions share one vocabulary)."""
        source = self.forward or self.backward
        return source.tokenizer if source is not None else None

    def sentence(self) -> str:
        """One sentence for the run's description."""
        return describe_tags(self.tags)

    def origins(self) -> str:
        """Where the sources are, for the run's header: ``<path> (run <id>)``, each."""
        found = []
        for prefix in ("init_from", "init_from_backward"):
            if f"{prefix}.path" in self.tags:
                run = self.tags.get(f"{prefix}.run_id")
                found.append(f"{self.tags[f'{prefix}.path']}" + (f" (run {run})" if run else ""))
        return " + backward ".join(found)


def describe_tags(tags: dict[str, str]) -> str:
    """``Started from the language model <path> (run <id>)...``, from the tags alone."""
    parts = []
    for prefix, what in (("init_from", "the language model"), ("init_from_backward", "")):
        if f"{prefix}.path" not in tags:
            continue
        run = tags.get(f"{prefix}.run_id")
        origin = f"{tags[f'{prefix}.path']}" + (f" (run {run})" if run else "")
        parts.append(
            f"{what} {origin}: its tokenizer, embedding and encoder"
            if what
            else f"its backward direction from the backward language model {origin}"
        )
    return ("Started from " + "; ".join(parts) + ".") if parts else ""


def reads_backward(checkpoint: Checkpoint) -> bool | None:
    """Whether the checkpoint's language model read its text reversed (``data.reverse``);
    None where its config does not say (models trained before the setting existed)."""
    data = checkpoint.config.get("data") if isinstance(checkpoint.config, dict) else None
    reverse = (data or {}).get("reverse")
    return None if reverse is None else bool(reverse)


def check_direction(source: Pretrained) -> str | None:
    """The mismatch between the direction a source is used for and the one it read."""
    backward = reads_backward(source.checkpoint)
    if backward is None or backward == (source.direction == "backward"):
        return None
    read = "reversed (data.reverse=true)" if backward else "left to right (data.reverse=false)"
    other = "model.init_from_backward" if backward else "model.init_from"
    return f"{source.setting}: its language model read the text {read}; give it as {other}"


def check_fits(cfg: Any, init: InitFrom) -> None:
    """One error naming every way the sources do not fit this run's config (no data read)."""
    found: list[str] = []
    for source in (init.forward, init.backward):
        if source is not None:
            found += [f"{source.setting}: {m}" for m in mismatches(source.config, cfg)]
            found += [m for m in [check_direction(source)] if m]
    bidirectional = bool(cfg.encoder.get("bidirectional", False))
    if init.backward is not None and not bidirectional:
        found.append(
            "model.init_from_backward starts the backward direction of a bidirectional "
            "encoder; this one reads one way (set encoder.bidirectional=true)"
        )
    if init.forward is not None and init.backward is not None:
        same = init.forward.tokenizer.fingerprint() == init.backward.tokenizer.fingerprint()
        if not same:
            found.append(
                "the two language models have different vocabularies (tokenizers fitted on "
                "other texts or settings); train both on the same texts with one tokenizer"
            )
    if found:
        given = [s for s in (init.forward, init.backward) if s is not None]
        sources = ", ".join(f"{s.setting}={s.reference}" for s in given)
        raise ConfigError(
            f"{sources} does not fit this run's config: {'; '.join(found)}. The tokenizer "
            "(its vocabulary), embedding and encoder must be the language model's: give "
            "these overrides, or start from another model."
        )


def mismatches(source: dict[str, Any], cfg: Any) -> list[str]:
    """Each setting of ``SHARED`` where the source's config and this run's differ, with
    the override that gives this run the source's value."""
    from omegaconf import OmegaConf

    found = []
    for group in SHARED:
        theirs = dict(source.get(group) or {})
        ours = OmegaConf.to_container(cfg[group], resolve=True)
        if theirs.get("name") != ours.get("name"):
            what = "vocabulary: " if group == "tokenizer" else ""
            found.append(
                f"{what}{group}={theirs.get('name')} in the language model, {ours.get('name')} "
                f"here (set {group}={theirs.get('name')})"
            )
            continue
        added = _defaults_of_settings_added_since(group, ours.get("name"), theirs)
        for key in sorted(set(theirs) | set(ours)):
            if "dropout" in key or key == "name" or theirs.get(key) == ours.get(key):
                continue
            if key in added and ours.get(key) == added[key]:
                continue  # a setting newer than the source, at the default it trained with
            if key == "bidirectional" and not theirs.get(key):
                continue  # a bidirectional encoder from a one-way LM: its forward direction
            what = "vocabulary: " if group == "tokenizer" else ""
            value = _override_value(theirs.get(key))
            found.append(
                f"{what}{group}.{key} is {value} in the language model, "
                f"{_override_value(ours.get(key))} here (set {group}.{key}={value})"
            )
    return found


def _defaults_of_settings_added_since(group: str, name: Any, theirs: dict) -> dict[str, Any]:
    """The defaults of the component's settings that the source's config lacks (added to
    the component after the language model was trained: it ran with their defaults)."""
    from dataclasses import MISSING, fields

    from pipeline.registry import ALL

    registry = ALL[group]
    if name not in registry.names():
        return {}
    defaults = {}
    for spec in fields(registry.get(name).config):
        if spec.name not in theirs and spec.default is not MISSING:
            defaults[spec.name] = spec.default
    return defaults


def _override_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value).replace(" ", "")


def transfer(model: nn.Module, init: InitFrom) -> int:
    """Copy the sources' embedding and encoder weights into ``model`` (built from this run's
    config); return how many tensors were copied. The head and pooler stay as built."""
    target = model.state_dict()
    copied: dict[str, Tensor] = {}
    first = init.forward or init.backward
    if first is not None:
        copied |= {k: v for k, v in first.checkpoint.model.items() if k.startswith("embedding.")}
    for direction, source in enumerate((init.forward, init.backward)):
        if source is not None:
            copied |= encoder_weights(source, target, direction)
    for key, value in copied.items():
        if key not in target or target[key].shape != value.shape:
            shape = "absent" if key not in target else tuple(target[key].shape)
            raise PipelineError(
                f"{first.setting if first else 'model.init_from'}: the weight {key} "
                f"{tuple(value.shape)} has no place in this model (here: {shape}). Use the same "
                "embedding and encoder as the language model."
            )
    with torch.no_grad():
        model.load_state_dict(copied, strict=False)
    return len(copied)


def encoder_weights(source: Pretrained, target: dict[str, Tensor], direction: int) -> dict:
    """The source's encoder weights under this model's names: as they are, or (a one-way
    recurrent language model) as direction ``direction`` (0 forward, 1 backward) of each
    layer; a stacked layer's input weights widened to read both directions (zeros for the
    other one's columns)."""
    weights = {k: v for k, v in source.checkpoint.model.items() if k.startswith("encoder.")}
    if not weights:
        raise PipelineError(
            f"{source.setting}={source.reference} holds no encoder weights (its model has no "
            "encoder); start from a language model trained with task=lm."
        )
    found = [RNN_KEY.fullmatch(k) for k in weights]
    if not all(found) or any(m.group(2) != "0" for m in found if m):
        if direction == 1:
            raise ConfigError(
                f"model.init_from_backward={source.reference}: its encoder is not a one-way "
                "recurrent stack (encoder=lstm, gru or rnn with encoder.bidirectional=false), "
                "so it has no direction to give; train the backward language model with one."
            )
        return weights
    mapped = {}
    for match, value in zip(found, weights.values(), strict=True):
        layer, _, name = match.groups()
        key = f"encoder.layers.{layer}.{direction}.{name}"
        wide = name.startswith("weight_ih") and int(layer) > 0
        mapped[key] = widened(value, target.get(key), direction) if wide else value
    return mapped


def widened(value: Tensor, target: Tensor | None, direction: int) -> Tensor:
    """Input weights [G, H] of a one-way layer placed in a layer that reads both directions
    [G, 2H]: its own direction's columns, zeros for the other's."""
    if target is None or target.shape == value.shape or target.shape[1] != 2 * value.shape[1]:
        return value  # the shapes are checked by the caller
    width = value.shape[1]
    out = torch.zeros_like(target)
    out[:, direction * width : (direction + 1) * width] = value
    return out
