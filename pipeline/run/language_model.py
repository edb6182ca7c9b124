"""A language-model run (``task=lm``): corpus -> tokenize -> streams -> TBPTT -> perplexity.

Wired like the classification run in ``pipeline.run.runner`` and tracked the same way; the
stages are ``load_corpus``, ``fit_tokenizer``/``tokenize`` (cached), ``build_language_model``,
``fit_lm``/``evaluate_lm``, and text samples from ``pipeline.inference.generate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline import __version__


def run_language_model(
    cfg: Any,
    corpus_cfg: Any,
    trainer: Any,
    optimizer_cfg: Any,
    tracking_cfg: Any,
    task: Any,
    device: Any,
    tracker: Any,
    out_dir: Path,
    result: Any,
    resumed: dict[str, Any] | None = None,
) -> None:
    import torch

    from pipeline.data.corpus import load_corpus
    from pipeline.data.streams import flat_ids
    from pipeline.data.tokenize import fit_tokenizer, tokenize
    from pipeline.inference.generate import sample
    from pipeline.model.assembly import build_language_model, count_parameters, init_uniform
    from pipeline.model.checkpoint import load_checkpoint
    from pipeline.reporting.plots import learning_curves
    from pipeline.run.runner import record_config, seed_everything
    from pipeline.training.loop import autocast_dtype
    from pipeline.training.loop_lm import evaluate_lm, fit_lm

    seed = int(cfg.seed)
    resolved = record_config(cfg, tracker, out_dir, log_params=resumed is None)

    corpus = load_corpus(corpus_cfg, seed=seed)
    tokenizer = fit_tokenizer(cfg.tokenizer, corpus.splits["train"])
    tokenized = tokenize(corpus.splits, tokenizer, None)
    ids = {name: flat_ids(split) for name, split in tokenized.splits.items()}
    char_level = getattr(tokenizer, "separator", " ") == ""
    print(
        f"data: {corpus.source}: "
        + ", ".join(f"{k} {v.numel():,} tokens" for k, v in ids.items())
        + f"; vocabulary {tokenizer.vocab_size:,} ({'characters' if char_level else 'words'}); "
        + (
            "tokens from cache"
            if tokenized.rows_tokenized == 0
            else f"tokenized in {tokenized.seconds:.1f}s"
        ),
        flush=True,
    )
    tokenizer_dir = out_dir / "tokenizer"
    tokenizer.save(tokenizer_dir)
    tracker.log_artifact(tokenizer_dir, "tokenizer")

    seed_everything(seed)
    model = build_language_model(cfg, tokenizer.vocab_size, tokenizer.pad_id)
    if task.init_range:
        init_uniform(model, task.init_range)
    n_params = count_parameters(model)
    tracker.set_tags({"n_params": str(n_params)})
    print(f"model: {n_params:,} parameters on {device}", flush=True)

    prompt = task.sample_prompt or _default_prompt(tokenizer, ids["validation"], char_level)
    samples = out_dir / "samples"
    samples.mkdir(exist_ok=True)

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics(metrics, step=epoch)
        if task.sample_tokens:
            text = sample(
                model,
                tokenizer,
                prompt,
                max_tokens=task.sample_tokens,
                temperature=0.8,
                top_k=0,
                seed=seed,
                device=device,
            )
            path = samples / f"epoch_{epoch:03d}.txt"
            path.write_text(text + "\n", encoding="utf-8")
            tracker.log_artifact(path, "samples")
            model.train()

    checkpoint_dir = Path(trainer.checkpoint_dir)
    extra = {
        "config": resolved,
        "tokenizer_dir": str(tokenizer_dir.resolve()),
        "mlflow_run_id": tracker.run_id,
        "versions": {"pipeline": __version__, "torch": str(torch.__version__)},
    }
    fitted = fit_lm(
        model,
        ids["train"],
        ids["validation"],
        trainer=trainer,
        optimizer_cfg=optimizer_cfg,
        pad_id=tokenizer.pad_id,
        char_level=char_level,
        device=device,
        checkpoint_dir=checkpoint_dir,
        checkpoint_extra=extra,
        on_epoch=on_epoch,
        resume=resumed,
    )
    result.best_checkpoint = fitted.best_path
    if fitted.best_path is not None:
        model.load_state_dict(load_checkpoint(fitted.best_path)["model"])
    best = fitted.history[fitted.best_epoch - 1]
    result.metrics = {k: v for k, v in best.items() if k.startswith("val/")}
    if "test" in ids:
        test = evaluate_lm(
            model,
            ids["test"],
            batch_size=trainer.eval_batch_size,
            bptt=trainer.bptt,
            pad_id=tokenizer.pad_id,
            device=device,
            autocast=autocast_dtype(device, trainer.amp),
        )
        result.metrics |= test.metrics("test", char_level)
        tracker.log_metrics(test.metrics("test", char_level), step=fitted.best_epoch)
        print(f"test: perplexity {test.perplexity:.2f} over {test.tokens:,} tokens", flush=True)
    tracker.log_metrics({"best_epoch": fitted.best_epoch})

    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    learning_curves(fitted.history, plots / "learning_curves.png")
    tracker.log_artifact(plots, "plots")
    (out_dir / "history.json").write_text(json.dumps(fitted.history, indent=1))
    if task.sample_tokens:
        final = sample(
            model,
            tokenizer,
            prompt,
            max_tokens=task.sample_tokens,
            temperature=0.8,
            seed=seed,
            device=device,
        )
        print(f"sample (best checkpoint, temperature 0.8):\n{final}\n", flush=True)
    if tracking_cfg.log_model:
        model.to("cpu").eval()
        tracker.log_model(
            model,
            name="model",
            serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )


def _default_prompt(tokenizer: Any, validation: Any, char_level: bool) -> str:
    """The first few tokens of the validation split: a prompt the model has not trained on."""
    head = validation[: 20 if char_level else 5].tolist()
    eos = getattr(tokenizer, "eos_id", None)
    head = [i for i in head if i != eos] or head
    return tokenizer.decode(head).strip() or tokenizer.decode(head)
