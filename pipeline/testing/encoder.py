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
  the second, equals running it whole (what language models rely on).

Each check runs even when another failed; the report lists every failure in words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pipeline import registry
from pipeline.contracts import Encoder, EncoderOutput

#: Lengths of the test batch: a full row, shorter ones, a single token, an empty row.
LENGTHS = (7, 4, 1, 0)


class EncoderCheckError(AssertionError):
    """Raised by :meth:`EncoderReport.assert_ok` with every failure listed."""


@dataclass
class EncoderReport:
    """The outcome of :func:`check_encoder`: which checks passed and why others failed."""

    encoder: str
    passed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def assert_ok(self) -> None:
        if self.failures:
            raise EncoderCheckError(str(self))

    def __str__(self) -> str:
        lines = [f"encoder '{self.encoder}': {len(self.passed)} checks passed, "]
        lines[0] += f"{len(self.failures)} failed"
        lines += [f"  FAIL {message}" for message in self.failures]
        lines += [f"  ok   {name}" for name in self.passed]
        return "\n".join(lines)


def _entry_for(encoder: str | type, config: Any) -> registry.Entry:
    if isinstance(encoder, str):
        if encoder not in registry.encoders:  # a plugin's own tests: load the entry points
            from pipeline.plugins import load_plugins

            load_plugins()
        return registry.encoders.get(encoder)
    target = f"{encoder.__module__}:{encoder.__qualname__}"
    for entry in registry.encoders.entries():
        if entry.target == target and entry.cls is encoder:  # imports only that one
            return entry
    if config is None:
        raise ValueError(
            f"{encoder.__qualname__} is not registered: decorate it with "
            "@encoders.register(name, config=...) (or declare it), or pass its config to "
            "check_encoder."
        )
    name = getattr(config, "name", "") or encoder.__qualname__
    return registry.Entry(name, encoder, type(config), provider="(not registered)")


def _outputs(output: EncoderOutput) -> dict[str, Tensor]:
    """The tensors of an output that have one row per sequence."""
    named = {"sequence": output.sequence, "final": output.final, "pooled": output.pooled}
    named["attention"] = output.attention
    return {k: v for k, v in named.items() if v is not None}


def _mask(lengths: Tensor, width: int) -> Tensor:
    return torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]


def _close(a: Tensor, b: Tensor, atol: float, rtol: float) -> str | None:
    """None when close, else a short description of the largest difference."""
    if a.shape != b.shape:
        return f"shapes {tuple(a.shape)} and {tuple(b.shape)} differ"
    if torch.allclose(a, b, atol=atol, rtol=rtol):
        return None
    return f"max abs difference {float((a - b).abs().max()):.3g} (atol {atol}, rtol {rtol})"


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
    entry = _entry_for(encoder, config)
    if config is None:
        config = entry.config(name=entry.name, **fields)
    report = EncoderReport(entry.name)

    def check(name: str, body: Callable[[], str | None]) -> None:
        try:
            problem = body()
        except Exception as exc:  # a crash is a failure of that check, not of the kit
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            report.failures.append(f"{name}: {problem}")
        else:
            report.passed.append(name)

    def build(build_seed: int) -> Encoder:
        torch.manual_seed(build_seed)
        return entry.cls(config, input_dim)

    try:
        module = build(seed).eval()
    except Exception as exc:
        report.failures.append(
            f"construct: {entry.cls.__qualname__}(config, {input_dim}) raised "
            f"{type(exc).__name__}: {exc}"
        )
        return report

    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(LENGTHS)
    width = int(lengths.max())
    x = torch.randn(len(LENGTHS), width, input_dim, generator=generator)
    mask = _mask(lengths, width)

    check("config", lambda: _check_config(config, entry))
    check("dims", lambda: _check_dims(module, x, mask, input_dim))
    check("padding", lambda: _check_padding(module, x, mask, lengths, generator, atol, rtol))
    check("empty rows", lambda: _check_empty_rows(module, x, mask, input_dim))
    check("gradients", lambda: _check_gradients(build(seed), x, mask, generator))
    check("eval determinism", lambda: _check_determinism(module, x, mask))
    check("state dict", lambda: _check_state_dict(module, build(seed + 1), x, mask, atol, rtol))
    if getattr(module, "causal", False):
        check("causal", lambda: _check_causal(module, x, generator, atol, rtol))
    return report


def _check_config(config: Any, entry: registry.Entry) -> str | None:
    from omegaconf import OmegaConf

    if not dataclasses.is_dataclass(config):
        return f"the config is a {type(config).__name__}, not a dataclass"
    # What Hydra does: a structured node from the dataclass, overrides merged in, back.
    values = OmegaConf.to_container(OmegaConf.structured(config))
    back = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(type(config)), values))
    if entry.name in registry.encoders:
        back = registry.encoders.config_from(OmegaConf.create(values))
    if back != config:
        return f"a round trip through OmegaConf changed it: {config} -> {back}"
    return None


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
    noisy = x.clone()
    noisy[~mask] = 100 * torch.randn(int((~mask).sum()), x.size(2), generator=generator)
    with torch.no_grad():
        batch = _outputs(module(noisy, mask))
        for row, length in enumerate(lengths.tolist()):
            if length == 0:
                continue
            alone = _outputs(module(x[row : row + 1, :length], mask[row : row + 1, :length]))
            for name, tensor in alone.items():
                in_batch = batch[name][row : row + 1]
                if name in ("sequence", "attention"):
                    in_batch = in_batch[:, :length]
                problem = _close(tensor, in_batch, atol, rtol)
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
    for label, outputs, rows in (("in a batch", mixed, empty_row), ("alone", empty_only, [0, 1])):
        for name, tensor in outputs.items():
            if not torch.isfinite(tensor[rows]).all():
                return f"a zero-length row {label} gives non-finite {name}"
    return None


def _check_gradients(
    module: Encoder, x: Tensor, mask: Tensor, generator: torch.Generator
) -> str | None:
    module.train()
    outputs = _outputs(module(x, mask))
    loss = sum(
        (t * torch.randn(t.shape, generator=generator)).sum()
        for name, t in outputs.items()
        if t.is_floating_point() and name != "attention"
    )
    loss.backward()
    missing = [
        name
        for name, p in module.named_parameters()
        if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
    ]
    if missing:
        return f"no gradient reaches {', '.join(missing)} (unused parameters, or a detach)"
    return None


def _check_determinism(module: Encoder, x: Tensor, mask: Tensor) -> str | None:
    module.eval()
    with torch.no_grad():
        first, second = _outputs(module(x, mask)), _outputs(module(x, mask))
    for name, tensor in first.items():
        if not torch.equal(tensor, second[name]):
            return f"two eval-mode passes give different {name} (dropout left on in eval?)"
    return None


def _check_state_dict(
    module: Encoder, fresh: Encoder, x: Tensor, mask: Tensor, atol: float, rtol: float
) -> str | None:
    fresh.load_state_dict(module.state_dict())
    module.eval()
    fresh.eval()
    with torch.no_grad():
        expected, got = _outputs(module(x, mask)), _outputs(fresh(x, mask))
    for name, tensor in expected.items():
        problem = _close(tensor, got[name], atol, rtol)
        if problem:
            return f"a fresh instance loading the state dict gives another {name}: {problem}"
    return None


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
        problem = _close(whole.sequence[:, :cut], other[:, :cut], atol, rtol)
        if problem:
            return f"claims causal=True, but later tokens change earlier steps: {problem}"
        first = module(x[:, :cut], full[:, :cut])
        if first.state is None:
            return None  # no state to carry: nothing more to check
        second = module(x[:, cut:], full[:, cut:], state=first.state)
    problem = _close(second.sequence, whole.sequence[:, cut:], atol, rtol)
    if problem:
        return (
            "running a sequence in two halves, passing state from the first to the second, "
            f"differs from running it whole: {problem}"
        )
    return None
