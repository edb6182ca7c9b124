"""``model.init_from`` / ``model.init_from_backward``: find the trained language model a
run starts from (a checkpoint, a run's output folder, an MLflow run id or ``runs:/`` URI,
through :mod:`pipeline.inference.stored`), load it, and check it fits the run's config,
before any data is read (:mod:`pipeline.model.transfer` copies its weights later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, PipelineError
from pipeline.model.transfer import InitFrom, Pretrained, check_fits

USAGE = "Pass a language model's run id, its checkpoint (best.pt) or its output folder instead."


def resolve_init_from(cfg: Any, tracking_uri: str | None, resumed: Any) -> InitFrom | None:
    """The run's sources, loaded and checked; None where ``model.init_from*`` is unset.
    A resumed run loads none of them again (its ``last.pt`` holds the weights it trains)."""
    model = cfg.get("model") or {}
    references = {"forward": model.get("init_from"), "backward": model.get("init_from_backward")}
    if not any(references.values()):
        return None
    if resumed is not None:
        return InitFrom(tags=dict(resumed.extra.get("init_from") or {}), loaded=False)
    loaded = {
        d: load_source(str(ref), d, tracking_uri or "") if ref else None
        for d, ref in references.items()
    }
    init = InitFrom.of(loaded["forward"], loaded["backward"])
    check_fits(cfg, init)
    return init


def load_source(reference: str, direction: str, tracking_uri: str) -> Pretrained:
    """One source: a checkpoint file, a run's output folder, or a model in MLflow."""
    from pipeline.inference.stored import RUN_ID, open_stored_model

    path = Path(reference).expanduser()
    if path.is_dir() and not (path / "MLmodel").is_file():
        found = [path / n for n in ("best.pt", "last.pt") if (path / n).is_file()]
        if not found:
            raise ConfigError(
                f"{_setting(direction)}={reference} is a folder with no best.pt or last.pt; "
                f"give a language model run's output folder or checkpoint. {USAGE}"
            )
        return from_checkpoint(found[0], None, reference, direction)
    if path.is_file():
        return from_checkpoint(path, None, reference, direction)
    if not (path.is_dir() or ":/" in reference or RUN_ID.fullmatch(reference)):
        raise ConfigError(
            f"{_setting(direction)}={reference} is neither a file, a folder, an MLflow run id "
            f"(32 hex characters) nor a runs:/ or models:/ URI. {USAGE}"
        )
    with open_stored_model(reference, tracking_uri, USAGE) as stored, stored.named_in_errors():
        source = from_checkpoint(stored.checkpoint, stored.tokenizer, reference, direction)
        source.path = stored.uri if ":/" in stored.uri else str(Path(stored.uri).resolve())
        source.run_id = stored.run_id or source.run_id
        return source


def from_checkpoint(
    path: Path, tokenizer_dir: Path | None, reference: str, direction: str
) -> Pretrained:
    """The checkpoint at ``path`` and its tokenizer (``tokenizer_dir``, else the folder it
    records, else ``tokenizer/`` beside it), loaded into memory."""
    from pipeline.data.tokenize import TOKENIZER_CONFIG_FILE, load_tokenizer
    from pipeline.model.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(path, what="language-model")
    candidates = [tokenizer_dir, checkpoint.tokenizer_dir, path.parent / "tokenizer"]
    folders = [Path(p) for p in candidates if p]
    folder = next((p for p in folders if (p / TOKENIZER_CONFIG_FILE).is_file()), None)
    if folder is None:
        raise PipelineError(
            f"{_setting(direction)}={reference}: the language model's tokenizer is not found "
            f"(looked in {', '.join(map(str, folders))}); its vocabulary is carried over, so "
            "it is needed. Restore the run's tokenizer/ folder beside its checkpoint."
        )
    return Pretrained(
        direction=direction,
        reference=reference,
        path=str(path.absolute()),
        checkpoint=checkpoint,
        tokenizer=load_tokenizer(folder),
        run_id=checkpoint.mlflow_run_id,
    )


def _setting(direction: str) -> str:
    return "model.init_from" if direction == "forward" else "model.init_from_backward"
