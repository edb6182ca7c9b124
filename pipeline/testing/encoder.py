"""A conformance kit for encoder plugins: ``check_encoder("my_encoder")``.

Every built-in encoder passes it in our tests; a third party runs it in theirs::

    from pipeline.testing import check_encoder

    def test_my_encoder_honours_the_contract():
        check_encoder("my_encoder", hidden_size=8).assert_ok()

It checks what the core relies on (see ``pipeline.contracts``):

* ``config``: the config is a dataclass that survives a round trip through OmegaConf and
  the registry (what Hydra does with ``encoder=<name> encoder.<key>=...``);
* ``dims``: ``output_dim`` is set, ``sequence`` is [B, T, output_dim], ``final`` and
  ``pooled`` (when given) are [B, output_dim], ``attention`` [B, T];
* ``padding``: a sequence alone equals the same sequence inside a right-padded batch (every
  step of ``sequence``, so every direction; ``final``, ``pooled``), whatever the padding
  positions of ``x`` hold;
* ``empty rows``: zero-length rows, and a batch of them only, give finite outputs;
* ``gradients``: every trainable parameter receives a non-zero gradient;
* ``eval determinism``: two forward passes in eval mode agree exactly;
* ``state dict``: a fresh instance loading the state dict gives the same outputs;
* ``causal`` (encoders that claim ``causal = True``): changing later tokens never changes an
  earlier step, and running a sequence in two halves, passing ``state`` from the first to
  the second, equals running it whole (what language models rely on);
* ``state`` (causal encoders that return ``state``): with ``carries_state = True`` (as a
  language model sets it), the state after a right-padded batch is each row's state at its
  last real token, so continuing from it (``state=``) gives every row the same next steps
  as continuing from that row run alone.

The state rule: ``state`` may be any nest of tensors in tuples, lists and dicts (the loop
detaches it, moves it between devices and saves it on interrupt), taken at each row's last
real token, never run on through padding.

Each check runs even when another failed; the report lists every failure in words. A broken
encoder (an import, a config or a constructor that fails) is a named failure, never a crash.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pipeline import registry
from pipeline.contracts import Encoder, EncoderOutput
from pipeline.testing.report import CheckError, Report, build, check_config, label, resolve
from pipeline.testing.tensors import (
    LENGTHS,
    close,
    deterministic,
    mask_of,
    missing_gradients,
    noisy,
    random_loss,
    same_after_load,
)


class EncoderCheckError(CheckError):
    """Raised by :meth:`EncoderReport.assert_ok` with every failure listed."""


class EncoderReport(Report):
    """The outcome of :func:`check_encoder` (a :class:`~pipeline.testing.report.Report`)."""

    error = EncoderCheckError

    def __init__(self, encoder: str) -> None:
        super().__init__("encoder", encoder)

    @property
    def encoder(self) -> str:
        return self.name


def _outputs(output: EncoderOutput) -> dict[str, Tensor]:
    """The tensors of an output that have one row per sequence."""
    named = {"sequence": output.sequence, "final": output.final, "pooled": output.pooled}
    named["attention"] = output.attention
    return {k: v for k, v in named.items() if v is not None}


def check_encoder(
    encoder: str | type[Encoder],
    config: Any = None,
    *,
    input_dim: int = 6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    **fields: Any,
) -> EncoderReport:
    """Check an encoder against the contract; return a report (``.assert_ok()`` raises).

    ``encoder`` is a registered name or class. The config is ``config`` when given, else the
    registered config dataclass with ``fields`` set (keep sizes small: the checks are quick).
    """
    report = EncoderReport(label(encoder))
    found = resolve(report, registry.encoders, encoder, config, fields)
    if found is None:
        return report
    entry, config = found

    def make(build_seed: int) -> Encoder:
        torch.manual_seed(build_seed)
        return entry.cls(config, input_dim)

    report.run("config", lambda: check_config(config, registry.encoders, entry.name))
    what = f"{entry.cls.__qualname__}(config, {input_dim})"
    module = build(report, what, lambda: make(seed).eval())
    if module is None:
        return report
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(LENGTHS)
    width = int(lengths.max())
    x = torch.randn(len(LENGTHS), width, input_dim, generator=generator)
    mask = mask_of(lengths, width)

    def run(m: Encoder) -> dict[str, Tensor]:
        return _outputs(m(x, mask))

    report.run("dims", lambda: _check_dims(module, x, mask, input_dim))
    report.run("padding", lambda: _check_padding(module, x, mask, lengths, generator, atol, rtol))
    report.run("empty rows", lambda: _check_empty_rows(module, x, mask, input_dim))
    report.run("gradients", lambda: _check_gradients(make(seed), x, mask, generator))
    report.run("eval determinism", lambda: deterministic(lambda: run(module.eval())))
    report.run("state dict", lambda: same_after_load(module, make(seed + 1), run, atol, rtol))
    if getattr(module, "causal", False):
        report.run("causal", lambda: _check_causal(module, x, generator, atol, rtol))
        report.run("state", lambda: _check_state(module, x, mask, lengths, generator, atol, rtol))
    return report


def _check_dims(module: Encoder, x: Tensor, mask: Tensor, input_dim: int) -> str | None:
    out_dim = getattr(module, "output_dim", None)
    if not isinstance(out_dim, int) or out_dim < 1:
        return f"output_dim must be a positive int, got {out_dim!r}"
    if getattr(module, "input_dim", None) != input_dim:
        return f"input_dim is {getattr(module, 'input_dim', None)!r}, expected {input_dim}"
    with torch.no_grad():
        output = module(x, mask)
    if not isinstance(output, EncoderOutput):
        return f"forward returned {type(output).__name__}, expected EncoderOutput"
    batch, width = mask.shape
    expected = {"sequence": (batch, width, out_dim), "final": (batch, out_dim)}
    expected |= {"pooled": (batch, out_dim), "attention": (batch, width)}
    for name, tensor in _outputs(output).items():
        if tuple(tensor.shape) != expected[name]:
            return f"{name} has shape {tuple(tensor.shape)}, expected {expected[name]}"
    return None


def _check_padding(
    module: Encoder,
    x: Tensor,
    mask: Tensor,
    lengths: Tensor,
    generator: torch.Generator,
    atol: float,
    rtol: float,
) -> str | None:
    with torch.no_grad():
        batch = _outputs(module(noisy(x, mask, generator), mask))
        for row, length in enumerate(lengths.tolist()):
            if length == 0:
                continue
            alone = _outputs(module(x[row : row + 1, :length], mask[row : row + 1, :length]))
            for name, tensor in alone.items():
                in_batch = batch[name][row : row + 1]
                if name in ("sequence", "attention"):
                    in_batch = in_batch[:, :length]
                problem = close(tensor, in_batch, atol, rtol)
                if problem:
                    return (
                        f"{name} of a length-{length} sequence differs alone and inside a "
                        f"padded batch: {problem}. Padding must never change a real token's "
                        "output (mask it; read the backward direction from each row's end)"
                    )
    return None


def _check_empty_rows(module: Encoder, x: Tensor, mask: Tensor, input_dim: int) -> str | None:
    with torch.no_grad():
        mixed = _outputs(module(x, mask))
        empty_only = _outputs(module(torch.randn(2, 1, input_dim), torch.zeros(2, 1, dtype=bool)))
    empty_row = (~mask.any(dim=1)).nonzero().flatten().tolist()
    for where, outputs, rows in (("in a batch", mixed, empty_row), ("alone", empty_only, [0, 1])):
        for name, tensor in outputs.items():
            if not torch.isfinite(tensor[rows]).all():
                return f"a zero-length row {where} gives non-finite {name}"
    return None


def _check_gradients(
    module: Encoder, x: Tensor, mask: Tensor, generator: torch.Generator
) -> str | None:
    module.train()
    outputs = _outputs(module(x, mask))
    random_loss((t for k, t in outputs.items() if k != "attention"), generator).backward()
    return missing_gradients(module)


def _check_causal(
    module: Encoder, x: Tensor, generator: torch.Generator, atol: float, rtol: float
) -> str | None:
    module.eval()
    full = torch.ones(x.shape[:2], dtype=torch.bool)
    cut = x.size(1) // 2
    changed = x.clone()
    changed[:, cut:] = torch.randn(changed[:, cut:].shape, generator=generator)
    with torch.no_grad():
        whole = module(x, full)
        other = module(changed, full).sequence
        problem = close(whole.sequence[:, :cut], other[:, :cut], atol, rtol)
        if problem:
            return f"claims causal=True, but later tokens change earlier steps: {problem}"
        first = module(x[:, :cut], full[:, :cut])
        if first.state is None:
            return None  # no state to carry: nothing more to check
        second = module(x[:, cut:], full[:, cut:], state=first.state)
    problem = close(second.sequence, whole.sequence[:, cut:], atol, rtol)
    if problem:
        return (
            "running a sequence in two halves, passing state from the first to the second, "
            f"differs from running it whole: {problem}"
        )
    return None


def _check_state(
    module: Encoder,
    x: Tensor,
    mask: Tensor,
    lengths: Tensor,
    generator: torch.Generator,
    atol: float,
    rtol: float,
) -> str | None:
    """Continuing from a padded batch's state equals continuing each row from its own,
    with ``carries_state`` set as a language model sets it."""
    module.eval()
    module.carries_state = True
    following = torch.randn(x.size(0), 3, x.size(2), generator=generator)
    full = torch.ones(following.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        state = module(noisy(x, mask, generator), mask).state
        if state is None:
            return None  # no state to carry: nothing to check
        continued = module(following, full, state=state).sequence
        for row, length in enumerate(lengths.tolist()):
            if length == 0:
                continue
            alone = module(x[row : row + 1, :length], mask[row : row + 1, :length]).state
            expected = module(following[row : row + 1], full[:1], state=alone).sequence
            problem = close(expected, continued[row : row + 1], atol, rtol)
            if problem:
                return (
                    f"continuing a length-{length} row from the state of a right-padded batch "
                    f"differs from continuing it from its state alone: {problem}. With "
                    "carries_state = True (set by a language model), the state must be taken "
                    "at each row's last real token, not run on through padding (pack the "
                    "sequence, or gather each row's state at length - 1)"
                )
    return None
