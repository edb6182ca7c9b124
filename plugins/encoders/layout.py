"""The cuDNN-friendly layout of the recurrent encoders, used on CUDA.

The encoders keep one single-layer, single-direction torch RNN per layer and direction:
that is their state dict, and on the CPU their computation (oneDNN's padded kernel is
fastest there). On a GPU, calling them one after another leaves cuDNN idle, so there:

* a unidirectional stack runs as **one multi-layer kernel call**: a multi-layer torch RNN
  built lazily whose parameters *are* the per-layer parameters (the same ``Parameter``
  objects, laid out in one contiguous cuDNN weight buffer), so optimizers, checkpoints and
  the per-layer modules all see the same tensors. Right padding needs nothing special: a
  left-to-right stack never lets padding reach a real token (but the states it returns
  run on through it, so a padded batch whose state is carried, ``carries_state``, runs
  layer by layer instead, each state taken at the row's last real token);
* the two directions of a bidirectional layer run **concurrently on two CUDA streams**,
  each exactly as on the CPU (the backward one over each row reversed within its length,
  so it starts at the row's last real token). One bidirectional kernel call would start
  the backward direction at the padding, and packing would need the lengths on the host.

Mixed precision: the stack runs as its layers do, outside autocast in fp32 when the run's
policy keeps RNNs so (``trainer.amp_rnn=fp32``, which hooks every ``nn.RNNBase`` of the
model: the stack is none of its submodules, so it is hooked here when it runs).

Dropout between stacked layers: the multi-layer kernel applies it itself (cuDNN's random
stream, not torch's). Under ``torch.use_deterministic_algorithms`` (``trainer.deterministic``)
a stack with dropout runs layer by layer instead, so its masks come from torch's generator
(checkpointed: an exact resume). Locked dropout (``locked_dropout``) between layers has
no kernel either: such a stack runs layer by layer too. Weight dropout (``weight_dropout``)
runs in both: the dropped W_hh are passed to the kernel (cuDNN then copies the weights
into its buffer at each training call, as it must for any new weight).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from pipeline.masking import at_last_token
from pipeline.runtime.amp import keep_rnns_fp32

if TYPE_CHECKING:
    from plugins.encoders.rnn import RecurrentEncoder

#: The torch RNNs whose stacks have a multi-layer kernel (exact types: a subclass may differ).
FUSABLE = (nn.LSTM, nn.GRU, nn.RNN)

_SIDE_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def fusable(encoder: RecurrentEncoder) -> bool:
    """Whether every layer is a plain single-layer, single-direction torch RNN."""
    rnns = [rnn for directions in encoder.layers for rnn in directions]
    return all(
        type(rnn) in FUSABLE
        and rnn.num_layers == 1
        and not rnn.bidirectional
        and rnn.batch_first
        and rnn.proj_size == 0
        and type(rnn) is type(rnns[0])
        for rnn in rnns
    )


def fused(encoder: RecurrentEncoder, x: Tensor) -> bool:
    """Whether this call uses the fused layout: on CUDA (``layout=auto``), or when forced."""
    if not fusable(encoder):
        return False
    if x.is_cuda and encoder.__dict__.get("_flat_key") != _flat_key(encoder):
        flatten(encoder)  # the weights moved or were replaced since they were laid out
    if encoder.layout == "layers":
        return False
    return encoder.layout == "fused" or x.is_cuda


def stacked(encoder: RecurrentEncoder) -> bool:
    """A unidirectional stack that runs as one multi-layer call (see the module docstring)."""
    if encoder.config.bidirectional or len(encoder.layers) < 2:
        return False
    if getattr(encoder.config, "locked_dropout", 0.0) > 0:
        return False  # the multi-layer kernel has no locked dropout between its layers
    return not (encoder.config.dropout > 0 and torch.are_deterministic_algorithms_enabled())


def run_stack(
    encoder: RecurrentEncoder, x: Tensor, lengths: Tensor, state: Any
) -> tuple[Tensor, list[Tensor], list[list[Any]]]:
    """The whole unidirectional stack in one call; states split back per layer."""
    rnn = stack_rnn(encoder)
    rnn.train(encoder.training)
    if getattr(encoder.layers[0][0], "_pipeline_fp32", False):  # trainer.amp_rnn=fp32
        keep_rnns_fp32(rnn)  # as its layers: outside autocast (idempotent)
    initial = _join([layer[0] for layer in state]) if state is not None else None
    out, final = encoder.call_rnn(rnn, x, initial)  # with dropped W_hh (weight_dropout)
    layers = [[layer_state] for layer_state in _split(final, len(encoder.layers))]
    return out, [at_last_token(out, lengths)], layers


def run_directions(
    encoder: RecurrentEncoder,
    directions: nn.ModuleList,
    x: Tensor,
    lengths: Tensor,
    initial: list[Any],
    last: bool,
    exact: bool = False,
) -> list[tuple[Tensor, Any, Tensor | None]]:
    """Both directions of one layer; on CUDA the backward one on a side stream.
    ``exact``: states at each row's last real token (``RecurrentEncoder._run_direction``)."""
    if not x.is_cuda:
        return [
            encoder._run_direction(rnn, direction, x, lengths, initial[direction], last, exact)
            for direction, rnn in enumerate(directions)
        ]
    main = torch.cuda.current_stream(x.device)
    side = _side_stream(x.device)
    side.wait_stream(main)  # x, lengths and the states are ready
    with torch.cuda.stream(side):
        backward = encoder._run_direction(directions[1], 1, x, lengths, initial[1], last, exact)
    forward = encoder._run_direction(directions[0], 0, x, lengths, initial[0], last, exact)
    main.wait_stream(side)
    for tensor in _tensors(backward):  # made on the side stream, used on the main one
        tensor.record_stream(main)
    return [forward, backward]


def stack_rnn(encoder: RecurrentEncoder) -> nn.RNNBase:
    """The multi-layer torch RNN over the encoder's own per-layer parameters (built once,
    again if a parameter object was replaced). Not a submodule: no second state dict."""
    params = _stack_params(encoder)
    rnn = encoder.__dict__.get("_stack_rnn")
    if rnn is None or any(a is not b for a, b in zip(rnn.aliases, params.values(), strict=True)):
        first = encoder.layers[0][0]
        options = {"nonlinearity": first.nonlinearity} if isinstance(first, nn.RNN) else {}
        rnn = type(first)(
            first.input_size,
            first.hidden_size,
            num_layers=len(encoder.layers),
            bias=first.bias,
            batch_first=True,
            device="meta",  # every parameter is replaced by the encoder's own below
            **options,
        )
        for name, param in params.items():
            setattr(rnn, name, param)
        rnn.to(first.weight_ih_l0.device)  # a no-op move: the RNN re-reads its new weights
        rnn.aliases = tuple(params.values())
        encoder.__dict__["_stack_rnn"] = rnn
    rnn.dropout = float(encoder.config.dropout)
    return rnn


def flatten(encoder: RecurrentEncoder) -> None:
    """On CUDA, lay the weights out in one contiguous buffer per kernel call (cuDNN copies
    them at every call otherwise, with a warning); a no-op elsewhere."""
    first = next(encoder.layers.parameters(), None)
    if first is None or not first.is_cuda or not fusable(encoder):
        return
    if encoder.layout != "layers" and stacked(encoder):
        stack_rnn(encoder).flatten_parameters()
    else:
        for directions in encoder.layers:
            for rnn in directions:
                rnn.flatten_parameters()
    encoder.__dict__["_flat_key"] = _flat_key(encoder)


def _flat_key(encoder: RecurrentEncoder) -> tuple:
    """What the weights' layout depends on: where they are, and which calls use them."""
    stack = encoder.layout != "layers" and stacked(encoder)
    return (stack, tuple(p.data_ptr() for p in encoder.layers.parameters()))


def _stack_params(encoder: RecurrentEncoder) -> dict[str, nn.Parameter]:
    """``layers.k.0.weight_ih_l0`` -> ``weight_ih_lk``: the multi-layer RNN's names."""
    return {
        name.removesuffix("l0") + f"l{depth}": param
        for depth, directions in enumerate(encoder.layers)
        for name, param in directions[0].named_parameters()
    }


def _join(states: list[Any]) -> Any:
    """Per-layer states ([1, B, H], or LSTM (h, c) pairs) -> one multi-layer state."""
    if isinstance(states[0], tuple):
        return tuple(torch.cat(parts, dim=0) for parts in zip(*states, strict=True))
    return torch.cat(states, dim=0)


def _split(state: Any, layers: int) -> list[Any]:
    """A multi-layer state [L, B, H] (or an (h, c) pair) -> one per layer."""
    if isinstance(state, tuple):
        return [tuple(part[k : k + 1] for part in state) for k in range(layers)]
    return [state[k : k + 1] for k in range(layers)]


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for item in value for t in _tensors(item)]
    return []


def _side_stream(device: torch.device) -> torch.cuda.Stream:
    """One side stream per GPU, shared by every encoder of the process."""
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return _SIDE_STREAMS[device]
