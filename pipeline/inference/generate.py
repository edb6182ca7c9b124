"""Sample text from a trained language model.

    python -m pipeline generate model=<checkpoint | MLflow run id | runs:/... | models:/...> \
        prompt="the time traveller" max_tokens=200 temperature=0.8 top_k=40 seed=0

The prompt warms the recurrent state up in one pass; then each sampled token is fed back
with the state. Sampling: logits / temperature, optionally only the top_k most likely
tokens, drawn with a seeded generator, so the same seed gives the same text. A model from
MLflow is rebuilt from its logged weights and config by this package (no stored code runs).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pipeline import tasks
from pipeline.config.arguments import parse_key_values
from pipeline.errors import ConfigError, PipelineError
from pipeline.model.sampling import decode, sample  # noqa: F401  (the generate command's own)


@dataclass
class GenerateArgs:
    model: str = ""
    prompt: str = ""
    max_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0  # 0 = every token
    seed: int = 0
    device: str = "cpu"
    tracking_uri: str = ""


def parse_args(argv: list[str]) -> GenerateArgs:
    """``key=value`` arguments, checked like the rest of the command line."""
    args, _ = parse_key_values("generate", argv, GenerateArgs)
    if not args.model:
        raise ConfigError(
            "generate needs model=<checkpoint path | MLflow run id | runs:/<id>/<model name> | "
            "models:/<name>/<version>>."
        )
    if args.temperature <= 0:
        raise ConfigError(f"generate temperature={args.temperature}: it must be > 0.")
    if args.max_tokens < 0 or args.top_k < 0:
        raise ConfigError("generate max_tokens and top_k must be >= 0.")
    return args


def load_generator(reference: str, tracking_uri: str = "") -> tuple[nn.Module, Any]:
    """(model, tokenizer) from a checkpoint file, an MLflow run id or a model URI.

    From MLflow, the model is rebuilt from its logged checkpoint and tokenizer by this
    package; nothing stored with it runs (a model stored as a pickle is refused)."""
    path = Path(reference)
    if path.suffix == ".pt" or path.is_file():
        return generator_from_checkpoint(path)
    from pipeline.inference.stored import open_stored_model

    usage = (
        "Generate from the run's checkpoint instead (python -m pipeline generate "
        "model=outputs/<date>/<time>/best.pt), or train the model again to log it in the "
        "current format."
    )
    with open_stored_model(reference, tracking_uri, usage) as stored, stored.named_in_errors():
        return generator_from_checkpoint(stored.checkpoint, stored.tokenizer)


def generator_from_checkpoint(
    path: str | Path, tokenizer_dir: str | Path | None = None
) -> tuple[nn.Module, Any]:
    """(model, tokenizer) of a language-model checkpoint (loaded with ``weights_only``); the
    tokenizer from ``tokenizer_dir``, else the folder the checkpoint records."""
    from omegaconf import OmegaConf

    from pipeline.data.tokenize import load_tokenizer
    from pipeline.model.assembly import build_language_model
    from pipeline.model.checkpoint import Checkpoint, load_weights
    from pipeline.plugins import load_plugins

    path = Path(path)
    load_plugins()
    saved = Checkpoint.load(path, what="language-model")
    folder = tokenizer_dir or saved.tokenizer_dir
    if not saved.config or folder is None:
        raise PipelineError(
            f"{path} is not a language-model checkpoint of this pipeline (it lacks the "
            "model, config or tokenizer). Use the best.pt or last.pt of a task=lm run."
        )
    config = saved.config if isinstance(saved.config, dict) else {}
    kind = tasks.kind(saved.kind)
    if kind.predicts != "tokens":
        name = (config.get("task") or {}).get("name", "?")
        raise PipelineError(
            f"{path} is a {kind.noun} checkpoint (task={name}); it predicts "
            f"{kind.predicts}, not tokens, so it cannot generate text. Use it with: "
            f"python -m pipeline {kind.usage.format(path=path)}, or train a language "
            "model with task=lm."
        )
    tokenizer = load_tokenizer(folder)
    model = build_language_model(OmegaConf.create(config), tokenizer.vocab_size, tokenizer.pad_id)
    load_weights(model, saved.model, path, folder)
    return model.eval(), tokenizer


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    model, tokenizer = load_generator(args.model, args.tracking_uri)
    from pipeline.runtime.device import resolve_device

    text = sample(
        model,
        tokenizer,
        args.prompt,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        device=resolve_device(args.device),
    )
    sys.stdout.write(text + "\n")
