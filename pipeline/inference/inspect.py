"""See inside a trained recurrent model: gates, cell and hidden state per token.

    python -m pipeline inspect model=<checkpoint | run id | runs:/... | models:/...> \
        text="..." [layer=0] [units=top:8 | units=3,17,42 | units=all] [out=<folder>]

For a classifier, tagger or language model whose encoder is traceable (``Encoder.trace``:
``lstm``, ``gru``, ``rnn``, ``scratch_lstm``...), the text is tokenized with the model's
tokenizer and run through the model; the encoder's trace of the chosen layer (both
directions: units are the layer's output features, backward ones after forward ones) is
written to ``out`` (default ``inspect/<text hash>-layer<L>``): ``<quantity>.png`` heatmaps
(tokens x units), ``activations.html`` and ``trace.json``. ``units=top:K`` picks the K units
whose cell (else hidden) state varies most over the text. A model loaded from MLflow gets
the files logged to its run under ``inspect/<folder name>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.arguments import parse_key_values
from pipeline.errors import ConfigError, DataError, PipelineError

USAGE = (
    "Usage: python -m pipeline inspect model=<checkpoint | run id | runs:/<id>/<model name> | "
    'models:/<name>/<version>> text="..." [layer=0] [units=top:8 | units=3,17,42 | units=all] '
    "[out=<folder>] [tracking_uri=...]"
)


@dataclass
class InspectArgs:
    model: str = ""
    text: str = ""
    layer: int = 0
    units: str = "top:8"
    out: str = ""
    tracking_uri: str = ""


@dataclass
class Seen:
    """What the model's encoder read for the text, and what it gave back."""

    encoder: Any
    x: Any  # [1, T, D]: the encoder's input
    mask: Any  # [1, T]
    sequence: Any  # [1, T, H]: its output
    tokens: list[str]
    run_id: str | None


def parse_args(argv: list[str]) -> InspectArgs:
    """``key=value`` arguments, checked before any model is loaded."""
    args, _ = parse_key_values("inspect", argv, InspectArgs, usage=USAGE)
    if not args.model or not args.text.strip():
        raise ConfigError(f"inspect needs model=... and a non-empty text=... . {USAGE}")
    if args.layer < 0:
        raise ConfigError(f"inspect layer={args.layer}: layers count from 0 (the bottom one).")
    parse_units(args.units)
    return args


def parse_units(spec: str) -> tuple[str, Any]:
    """``top:K`` -> ("top", K); ``all`` -> ("all", None); ``3,17`` -> ("list", [3, 17])."""
    spec = spec.strip()
    try:
        if spec == "all":
            return "all", None
        if spec.startswith("top:"):
            count = int(spec[4:])
            if count >= 1:
                return "top", count
        else:
            units = [int(u) for u in spec.split(",")]
            if units and min(units) >= 0:
                return "list", units
    except ValueError:
        pass
    raise ConfigError(
        f"inspect units={spec!r}: give top:K (the K units that vary most, K >= 1), a list of "
        "unit numbers such as units=3,17,42, or units=all."
    )


def choose_units(spec: str, values: Any, width: int) -> list[int]:
    """The units ``spec`` names, of ``width``; ``top:K`` by variance of ``values`` [T, width]."""
    how, arg = parse_units(spec)
    if how == "all":
        return list(range(width))
    if how == "top":
        spread = values.var(dim=0, unbiased=False) if values.size(0) > 1 else values.abs()[0]
        return sorted(spread.argsort(descending=True)[: min(arg, width)].tolist())
    bad = [u for u in arg if u >= width]
    if bad:
        raise ConfigError(
            f"inspect units={spec}: unit {bad[0]} does not exist; this layer "
            f"has units 0..{width - 1}."
        )
    return list(dict.fromkeys(arg))


def load(args: InspectArgs) -> Seen:
    """The model ``args.model`` names, run on ``args.text`` with its encoder watched."""
    from pipeline.inference.serving import load_with

    return load_with(args.model, args.tracking_uri, lambda p, t: _watch(p, t, args.text))


def _watch(path: Path, tokenizer_dir: Any, text: str) -> Seen:
    """Build the checkpoint's model (by what its kind predicts) and run it on ``text``,
    catching its encoder's input and output with hooks."""
    from pipeline import tasks
    from pipeline.model.checkpoint import Checkpoint

    saved = Checkpoint.load(path, what="model")
    predicts = tasks.kind(saved.kind).predicts
    readers = {"tokens": _language_model, "labels": _classifier, "tags": _tagger}
    if predicts not in readers:
        raise PipelineError(
            f"inspect: {path} is a {saved.kind} model, which predicts {predicts}; inspect "
            "reads classifiers, taggers and language models."
        )
    encoder, tokens, run = readers[predicts](path, tokenizer_dir, text)
    check_traceable(encoder, saved.config)
    return _run_watched(encoder, run, tokens, saved.mlflow_run_id)


def _language_model(path: Path, tokenizer_dir: Any, text: str) -> tuple[Any, list[str], Any]:
    """(encoder, tokens, how to run it on them) of a language model."""
    import torch

    from pipeline.inference.generate import generator_from_checkpoint

    model, tokenizer = generator_from_checkpoint(path, tokenizer_dir)
    ids = tokenizer.encode_batch([text])[0]

    def run() -> Any:
        return model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool))

    return model.encoder, token_strings(tokenizer, text, ids), run


def _classifier(path: Path, tokenizer_dir: Any, text: str) -> tuple[Any, list[str], Any]:
    """(encoder, tokens, how to run it on them) of a classifier (texts cut as in training)."""
    from pipeline.inference.classifier import classifier_from_checkpoint

    trained = classifier_from_checkpoint(path, tokenizer_dir)
    ids = trained.tokenizer.encode_batch([text])[0]
    tokens = list(trained.truncate(token_strings(trained.tokenizer, text, ids)))
    return trained.model.encoder, tokens, lambda: trained.predict_proba([text])


def _tagger(path: Path, tokenizer_dir: Any, text: str) -> tuple[Any, list[str], Any]:
    """(encoder, words, how to tag them) of a tagger: the text's words split on spaces."""
    from pipeline.inference.tagger import tagger_from_checkpoint

    trained = tagger_from_checkpoint(path, tokenizer_dir)
    words = text.split()
    return trained.model.encoder, words, lambda: trained.tag([words])


def _run_watched(encoder: Any, run: Any, tokens: list[str], run_id: str | None) -> Seen:
    import torch

    caught: dict[str, Any] = {}

    def before(module: Any, inputs: tuple) -> None:
        caught["x"], caught["mask"] = inputs[0].detach(), inputs[1].detach()

    def after(module: Any, inputs: tuple, output: Any) -> None:
        caught["sequence"] = output.sequence.detach()

    hooks = [encoder.register_forward_pre_hook(before), encoder.register_forward_hook(after)]
    try:
        with torch.inference_mode():
            run()
    finally:
        for hook in hooks:
            hook.remove()
    if not tokens or "x" not in caught or caught["x"].size(1) != len(tokens):
        raise DataError("inspect: the text gives no token this model reads; give a longer text.")
    return Seen(encoder, caught["x"], caught["mask"], caught["sequence"], tokens, run_id)


def token_strings(tokenizer: Any, text: str, ids: list[int]) -> list[str]:
    """One label per id: the tokenizer's own words where it gives one per id (so an unknown
    word shows as written), else each id's vocabulary entry."""
    split = getattr(tokenizer, "tokenize", None)
    words = split(text) if callable(split) else None
    if words is not None and len(words) == len(ids):
        return [str(w) for w in words]
    vocab = getattr(tokenizer, "vocab", None)
    if isinstance(vocab, list) and all(0 <= i < len(vocab) for i in ids):
        return [str(vocab[i]) for i in ids]
    return [tokenizer.decode([i]) or f"<{i}>" for i in ids]


def check_traceable(encoder: Any, config: dict[str, Any]) -> None:
    """One error for an encoder without ``trace``, naming the registered ones that have it."""
    if getattr(encoder, "traceable", False):
        return
    from pipeline import registry

    names = []
    for entry in registry.encoders.entries():
        try:
            if getattr(entry.cls, "traceable", False):
                names.append(entry.name)
        except Exception:  # a broken plugin: not a choice here
            continue
    name = (config.get("encoder") or {}).get("name", type(encoder).__name__)
    raise ConfigError(
        f"inspect: encoder={name} does not expose its gates and states (traceable is False). "
        f"inspect reads the recurrent encoders that do: {', '.join(names)}."
    )


def payload(seen: Seen, args: InspectArgs) -> dict[str, Any]:
    """The JSON of the chosen layer: tokens, units and each quantity's values [T][U]."""
    import torch

    traces = seen.encoder.trace(seen.x, seen.mask)
    layers = 1 + max(t.layer for t in traces)
    if args.layer >= layers:
        raise ConfigError(f"inspect layer={args.layer}: this encoder has layers 0..{layers - 1}.")
    chosen = [t for t in traces if t.layer == args.layer]
    names = list(chosen[0].quantities)
    joined = {n: torch.cat([t.quantities[n][0] for t in chosen], dim=1).float() for n in names}
    hidden = chosen[0].quantities["hidden"].size(2)
    units = choose_units(args.units, joined.get("cell", joined["hidden"]), hidden * len(chosen))
    top = torch.cat([t.quantities["hidden"][0] for t in traces if t.layer == layers - 1], dim=1)
    return {
        "model": args.model,
        "run_id": seen.run_id,
        "text": args.text,
        "tokens": seen.tokens,
        "layer": args.layer,
        "layers": layers,
        "directions": len(chosen),
        "hidden_size": hidden,
        "units": units,
        "unit_directions": [u // hidden for u in units],
        "selected_by": args.units,
        "gates": list(chosen[0].gates),
        "quantities": {n: joined[n][:, units].tolist() for n in names},
        "max_difference": float((top.float() - seen.sequence[0].float()).abs().max()),
    }


def output_folder(args: InspectArgs) -> Path:
    """``out``, else ``inspect/<text hash>-layer<L>``; made now, or one error why not."""
    digest = hashlib.sha1(args.text.encode("utf-8")).hexdigest()[:8]
    folder = Path(args.out or f"inspect/{digest}-layer{args.layer}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"inspect out={folder} cannot be made ({exc.strerror or exc}); choose "
            "another folder with out=..."
        ) from None
    return folder


def log_to_run(run_id: str, folder: Path) -> str:
    """The folder's files as artifacts of ``run_id`` under ``inspect/<folder name>``."""
    import mlflow

    from pipeline.tracking.extras import quiet_mlflow

    where = f"inspect/{folder.resolve().name}"
    try:
        with quiet_mlflow():
            mlflow.MlflowClient().log_artifacts(run_id, str(folder), artifact_path=where)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise PipelineError(
            f"inspect wrote {folder}, but could not log it to run {run_id} "
            f"({type(exc).__name__}: {reason})."
        ) from None
    return where


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block. One text's steps are small matrix products that
    a second OpenMP thread only slows down: the trace of a 230-token text took 0.4 s on two
    threads of a busy 2-core CPU, 0.03 s on one (the model's own pass: 0.5 s, 0.25 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str]) -> None:
    if any(a in ("--help", "-h") for a in argv):
        print(USAGE)
        return
    args = parse_args(argv)
    folder = output_folder(args)
    with one_thread():
        seen = load(args)
        data = payload(seen, args)
    from pipeline.reporting.inspection import heatmaps, page

    (folder / "trace.json").write_text(json.dumps(data), encoding="utf-8")
    images = heatmaps(data, folder)
    page(data, folder / "activations.html")
    print(
        f"wrote {folder}/: activations.html, trace.json and {len(images)} heatmaps "
        f"({', '.join(p.name for p in images)})",
        flush=True,
    )
    if seen.run_id and not Path(args.model).exists():
        print(f"logged to run {seen.run_id} under {log_to_run(seen.run_id, folder)}", flush=True)
