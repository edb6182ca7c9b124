"""A model's layer groups, bottom to top: what fine-tuning treats as one layer.

ULMFiT (Howard & Ruder 2018) gives each layer its own learning rate
(``optimizer.layer_lr_decay``) and unfreezes the layers one by one from the top
(``trainer.unfreeze=gradual``); both need to know what a layer is. The groups are:

* ``embedding``: the model's ``embedding`` (and so an LM head's weight tied to it);
* the encoder's layers: the encoder's own ``layer_groups()`` when it has one (a list of
  ``(name, parameters)``, bottom to top, named ``encoder.<name>``); else, when its
  ``layers`` is an ``nn.ModuleList`` (the built-in RNN encoders: one entry per layer, both
  directions inside it), one group per entry, ``encoder.0``, ``encoder.1``...; either way
  any encoder parameter left out (the ``lstm_attention`` encoder's attention, on top of
  its layers) joins the top encoder group. Else the whole encoder is one group, ``encoder``;
* ``head``: everything else (the pooler and the head).

A model without ``embedding`` or ``encoder`` attributes (a plugin task's own model) is
one group, ``model``. Every parameter is in exactly one group: the lowest it appears in,
so a weight shared between the embedding and an LM head is the embedding's.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

#: (group name, its parameters), bottom to top.
LayerGroups = list[tuple[str, list[nn.Parameter]]]


def layer_groups(model: nn.Module) -> LayerGroups:
    """The model's layer groups, bottom to top (see the module docstring)."""
    embedding = getattr(model, "embedding", None)
    encoder = getattr(model, "encoder", None)
    if not isinstance(embedding, nn.Module) or not isinstance(encoder, nn.Module):
        return _distinct([("model", list(model.parameters()))])
    groups = [("embedding", list(embedding.parameters())), *encoder_groups(encoder)]
    groups.append(("head", list(model.parameters())))  # what is left: pooler and head
    return _distinct(groups)


def encoder_groups(encoder: nn.Module) -> LayerGroups:
    """The encoder's layers, bottom to top: its ``layer_groups()``, its ``layers``
    (an ``nn.ModuleList``), or the whole encoder as one group."""
    own = getattr(encoder, "layer_groups", None)
    if callable(own):
        groups = [(f"encoder.{name}", list(params)) for name, params in own()]
    elif isinstance(getattr(encoder, "layers", None), nn.ModuleList) and len(encoder.layers):
        groups = [
            (f"encoder.{depth}", list(layer.parameters()))
            for depth, layer in enumerate(encoder.layers)
        ]
    else:
        return [("encoder", list(encoder.parameters()))]
    name, top = groups[-1]
    groups[-1] = (name, [*top, *encoder.parameters()])  # the rest: with the top layer
    return groups


def _distinct(groups: Iterable[tuple[str, list[nn.Parameter]]]) -> LayerGroups:
    """Each parameter in the first (lowest) group it appears in; empty groups dropped."""
    seen: set[int] = set()
    kept: LayerGroups = []
    for name, params in groups:
        mine = []
        for param in params:
            if id(param) not in seen:
                seen.add(id(param))
                mine.append(param)
        if mine:
            kept.append((name, mine))
    return kept
