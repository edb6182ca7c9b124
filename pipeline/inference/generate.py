"""Sample text from a trained language model.

    python -m pipeline generate model=<checkpoint | MLflow run id | runs:/... | models:/...> \
        prompt="the time traveller" max_tokens=200 temperature=0.8 top_k=40 seed=0

The prompt warms the recurrent state up in one pass; then each sampled token is fed back
with the state. Sampling: logits / temperature, optionally only the top_k most likely
tokens, drawn with a seeded generator, so the same seed gives the same text.
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
            "generate needs model=<checkpoint path | MLflow run id | runs:/<id>/model | "
            "models:/<name>/<version>>."
        )
    if args.temperature <= 0:
        raise ConfigError(f"generate temperature={args.temperature}: it must be > 0.")
    if args.max_tokens < 0 or args.top_k < 0:
        raise ConfigError("generate max_tokens and top_k must be >= 0.")
    return args


def load_generator(reference: str, tracking_uri: str = "") -> tuple[nn.Module, Any]:
    """(model, tokenizer) from a checkpoint file, an MLflow run id or a model URI."""
    from pipeline.data.tokenize import load_tokenizer

    path = Path(reference)
    if path.suffix == ".pt" or path.is_file():
        from pipeline.model.assembly import build_language_model
        from pipeline.model.checkpoint import Checkpoint, load_weights
        from pipeline.plugins import load_plugins

        load_plugins()
        saved = Checkpoint.load(path, what="language-model")
        if not saved.config or saved.tokenizer_dir is None:
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
        tokenizer = load_tokenizer(saved.tokenizer_dir)
        from omegaconf import OmegaConf

        model = build_language_model(
            OmegaConf.create(config), tokenizer.vocab_size, tokenizer.pad_id
        )
        load_weights(model, saved.model, path, saved.tokenizer_dir)
        return model, tokenizer

    import mlflow

    from pipeline.tracking.tracker import quiet_mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    uri = reference if ":/" in reference else f"runs:/{reference}/model"
    try:
        if uri.startswith("runs:/"):
            run_id = uri[len("runs:/") :].split("/")[0]
        else:
            run_id = mlflow.models.get_model_info(uri).run_id
        with quiet_mlflow():
            model = mlflow.pytorch.load_model(uri, map_location="cpu")
            tokenizer_dir = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="tokenizer"
            )
    except Exception as exc:
        raise PipelineError(
            f"Cannot load the model {reference!r} from MLflow at {mlflow.get_tracking_uri()} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}). "
            "Pass a checkpoint path, a run id of a language-model run, or set "
            "tracking_uri=... to the store that holds it."
        ) from None
    return model, load_tokenizer(tokenizer_dir)


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
