"""The ``scratch_lstm`` time loop on CPU: eager vs TorchScript vs torch.compile, and nn.LSTM.

    python bench/scratch_lstm.py [--repeats 5] [--threads N] [--skip compile-loop ...]

One layer, batch 32, T 100, D 128, H 128, float32; one step = forward + backward of
``out.sum()``. Every variant holds the same weights (an nn.LSTM's state_dict, loaded
strictly) and is checked against nn.LSTM (outputs and all gradients). Variants:

* ``nn.LSTM``: torch's fused kernel (oneDNN), the reference.
* ``eager``: the default path: a Python loop over ``lstm_step``.
* ``eager+peep+ln``: the same with peepholes and layer norm on (not compared: other model).
* ``jit-step``: ``torch.jit.script(lstm_step)``, the loop in Python.
* ``jit-loop``: the whole loop in TorchScript.
* ``compile-step``: ``torch.compile(lstm_step, dynamic=True)``, the loop in Python, so new
  lengths would not recompile.
* ``compile-loop``: ``torch.compile(lstm_recurrence)``: the loop unrolled over T, so every
  new length compiles again (a training run with bucketed lengths would recompile often).

Prints a table (ms per step and tokens/s, median of interleaved repeats after warm-up;
the first call's time, which includes any compile, with inductor's on-disk caches off so
that it is a cold compile) and writes ``bench/results/scratch_lstm.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")  # time cold compiles
os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from plugins.encoders.scratch_lstm import ScratchLSTMLayer, lstm_recurrence, lstm_step

BATCH, STEPS, INPUT, HIDDEN = 32, 100, 128, 128
WARMUP = 3  # TorchScript's profiling executor optimises after two calls


def scripted_loop(
    gates_x: Tensor, h: Tensor, c: Tensor, weight_hh: Tensor, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """``lstm_recurrence`` without the pluggable step, so TorchScript can compile the loop."""
    weight_hh_t = weight_hh.t()
    outputs: list[Tensor] = []
    for gates_t in gates_x.unbind(0):
        h, c = lstm_step(gates_t, h, c, weight_hh_t, None, None, None, None, None, None, eps)
        outputs.append(h)
    return torch.stack(outputs, dim=1), h, c


class WithRecurrence(ScratchLSTMLayer):
    """A plain scratch layer whose time loop is ``fn(gates_x, h, c, weight_hh, eps)``."""

    def __init__(self, fn: Any) -> None:
        super().__init__(INPUT, HIDDEN)
        self.fn = fn

    def recurrence(self, gates_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.fn(gates_x, h, c, self.weight_hh_l0, self.eps)


def python_loop_with(step: Any) -> Any:
    def loop(gates_x, h, c, weight_hh, eps):
        return lstm_recurrence(gates_x, h, c, weight_hh, eps=eps, step=step)

    return loop


def build_variants(skip: set[str]) -> tuple[dict[str, nn.Module], list[str]]:
    """The layers to time, and the deprecation warnings that building them raised."""
    caught: list[str] = []
    builders = {
        "nn.LSTM": lambda: nn.LSTM(INPUT, HIDDEN, batch_first=True),
        "eager": lambda: ScratchLSTMLayer(INPUT, HIDDEN),
        "eager+peep+ln": lambda: ScratchLSTMLayer(INPUT, HIDDEN, peepholes=True, layer_norm=True),
        "jit-step": lambda: WithRecurrence(python_loop_with(torch.jit.script(lstm_step))),
        "jit-loop": lambda: WithRecurrence(torch.jit.script(scripted_loop)),
        "compile-step": lambda: WithRecurrence(
            python_loop_with(torch.compile(lstm_step, dynamic=True))
        ),
        "compile-loop": lambda: WithRecurrence(torch.compile(python_loop_with(None))),
    }
    variants = {}
    for name, build in builders.items():
        if name in skip:
            continue
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            variants[name] = build()
        caught += sorted({f"{name}: {w.category.__name__}: {w.message}" for w in seen})
    return variants, caught


def step_once(layer: nn.Module, x: Tensor) -> float:
    start = time.perf_counter()
    out, _ = layer(x)
    out.sum().backward()
    return time.perf_counter() - start


def max_error(layer: nn.Module, reference: nn.Module, x: Tensor) -> float:
    """Largest |difference| to nn.LSTM, relative to the largest |value|, over the outputs,
    the final state and every gradient (weight gradients sum over B*T terms)."""
    results = []
    for module in (layer, reference):
        module.zero_grad(set_to_none=True)
        out, (h, c) = module(x)
        (out.sum() + h.sum() + c.sum()).backward()
        grads = [p.grad for p in module.parameters()]
        results.append([t.detach() for t in (out, h, c, *grads)])
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(*results, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip", nargs="*", default=[], help="variants to leave out")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(BATCH, STEPS, INPUT)
    variants, deprecations = build_variants(set(args.skip))
    reference = variants["nn.LSTM"]
    weights = reference.state_dict()
    errors: dict[str, float | None] = {}
    for name, layer in variants.items():
        if name != "eager+peep+ln":
            layer.load_state_dict(weights, strict=True)
    first: dict[str, float] = {}
    for name, layer in variants.items():  # warm-up (compiles happen here)
        first[name] = step_once(layer, x)
        for _ in range(WARMUP - 1):
            step_once(layer, x)
        compared = name not in ("nn.LSTM", "eager+peep+ln")
        errors[name] = max_error(layer, reference, x) if compared else None
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved, so drift hits every variant alike
        for name, layer in variants.items():
            runs[name].append(step_once(layer, x))
    ms = {name: 1000 * statistics.median(v) for name, v in runs.items()}
    tokens = {name: BATCH * STEPS / (m / 1000) for name, m in ms.items()}
    base = ms.get("eager")
    print(
        f"one LSTM layer {INPUT}->{HIDDEN}, batch {BATCH}, T {STEPS}, forward+backward, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(
        f"{'variant':<14} {'ms/step':>8} {'tokens/s':>9} {'vs eager':>9} "
        f"{'1st call s':>10} {'rel err':>8}"
    )
    for name in variants:
        speedup = f"{base / ms[name]:>8.2f}x" if base else f"{'':>9}"
        error = "" if errors[name] is None else f"{errors[name]:.1e}"
        print(
            f"{name:<14} {ms[name]:>8.1f} {tokens[name]:>9,.0f} {speedup} "
            f"{first[name]:>10.2f} {error:>8}"
        )
    for line in deprecations:
        print("warning while building", line[:150])
    out = Path(__file__).parent / "results" / "scratch_lstm.json"
    out.parent.mkdir(exist_ok=True)
    result = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "shape": {"batch": BATCH, "steps": STEPS, "input": INPUT, "hidden": HIDDEN},
        "ms_per_step": ms,
        "tokens_per_s": tokens,
        "first_call_s": first,
        "max_error_vs_nn_lstm": errors,
        "runs_s": runs,
        "warnings": deprecations,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
