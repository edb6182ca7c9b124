"""Train and evaluate a language model as language models are trained.

The token stream is cut into ``batch_size`` parallel streams (``pipeline.data.streams``) read in
windows of ``bptt`` steps; the encoder's recurrent state runs across windows and is
detached between them (truncated back-propagation through time). The loss is the mean
cross-entropy per target token; perplexity is exp of it, bits per character loss / ln 2.

Note on learning rates: Zaremba et al. sum the loss over the ``bptt`` steps and average it
over the batch; the mean per token used here is that divided by ``bptt``, so their lr = 1
and max-norm 5 correspond to ``optimizer.lr=20 trainer.grad_clip=0.25`` at bptt 20 (as in
PyTorch's word_language_model example).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.config.schemas import OptimizerConfig, TrainerConfig
from pipeline.data.streams import detach_state, make_streams, num_windows, windows
from pipeline.errors import ConfigError
from pipeline.model.checkpoint import save_atomic
from pipeline.training.interrupts import ResumePoint, StopRequest, TrainingInterrupted
from pipeline.training.loop import (
    NonFiniteWatch,
    autocast_dtype,
    check_finite,
    improved,
    make_optimizer,
    optimizer_step,
    restore,
    training_state,
)
from pipeline.training.progress import Progress
from pipeline.training.schedule import EpochSchedule

LN2 = math.log(2.0)


@dataclass
class LMEvaluation:
    """Summed loss over exactly ``tokens`` target tokens."""

    loss_sum: float
    tokens: int

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.tokens, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))  # exp overflows past ~709

    def metrics(self, prefix: str, char_level: bool) -> dict[str, float]:
        out = {f"{prefix}/loss": self.loss, f"{prefix}/perplexity": self.perplexity}
        if char_level:
            out[f"{prefix}/bpc"] = self.loss / LN2
        return out


@dataclass
class LMFitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float = float("nan")
    best_path: Path | None = None
    last_path: Path | None = None


def _loss_sum(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Summed cross-entropy over the real targets of a window (float32)."""
    return F.cross_entropy(logits[mask].float(), targets[mask], reduction="sum")


@torch.inference_mode()
def evaluate_lm(
    model: nn.Module,
    ids: Tensor,
    *,
    batch_size: int,
    bptt: int,
    pad_id: int,
    device: torch.device,
    autocast: torch.dtype | None = None,
) -> LMEvaluation:
    """Loss over every target of the stream ``ids`` (N - 1 tokens), state carried."""
    was_training = model.training
    model.eval()
    streams = make_streams(ids, batch_size, pad_id)
    total = torch.zeros((), dtype=torch.float64, device=device)
    state = None
    context = torch.autocast(device.type, dtype=autocast) if autocast else nullcontext()
    for window in windows(streams, bptt, device):
        with context:
            logits, state = model(window.inputs, window.mask, state)
        total += _loss_sum(logits, window.targets, window.mask)
    model.train(was_training)
    return LMEvaluation(total.item(), streams.num_targets)


def fit_lm(
    model: nn.Module,
    train_ids: Tensor,
    validation_ids: Tensor,
    *,
    trainer: TrainerConfig,
    optimizer_cfg: OptimizerConfig,
    pad_id: int,
    char_level: bool,
    device: torch.device,
    checkpoint_dir: Path,
    checkpoint_extra: dict[str, Any] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    resume: dict[str, Any] | None = None,
) -> LMFitResult:
    """Train ``model`` on ``train_ids``; validate each epoch; keep last.pt and best.pt.

    ``resume`` is a ``last.pt`` payload to go on from, exactly where it stopped (the carried
    recurrent state included); SIGINT / SIGTERM stop at the next window with last.pt saved.
    """
    if trainer.bptt < 1:
        raise ConfigError(f"trainer.bptt={trainer.bptt} is too small: it must be >= 1.")
    model.to(device)
    optimizer = make_optimizer(model.parameters(), optimizer_cfg, device)
    schedule = EpochSchedule(optimizer, optimizer_cfg)
    amp = autocast_dtype(device, trainer.amp)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    context = torch.autocast(device.type, dtype=amp) if amp else nullcontext()
    streams = make_streams(train_ids, trainer.batch_size, pad_id)
    result = LMFitResult()
    at = ResumePoint()
    if resume is not None:
        at = restore(resume, model, optimizer, schedule, scaler, result, Path(checkpoint_dir))

    def payload(point: ResumePoint, metrics: dict[str, float], finished: bool) -> dict:
        return training_state(
            model, optimizer, schedule, scaler, point, metrics, result.history, finished
        ) | (checkpoint_extra or {})

    with StopRequest() as stop:
        for epoch in range(at.epoch, trainer.max_epochs + 1):
            model.train()
            lr = schedule.start_epoch(epoch)
            steps = num_windows(streams, trainer.bptt)
            skip = at.step if epoch == at.epoch else 0
            progress = Progress(
                steps,
                f"epoch {epoch}/{trainer.max_epochs}",
                trainer.progress,
                trainer.log_every_n_steps,
                unit="tokens",
            )
            loss_sum = torch.full((), at.loss_sum if skip else 0.0, device=device)
            tokens = at.seen if skip else 0
            before = at.seconds if skip else 0.0
            state = _to_device(at.carried, device) if skip else None
            started = time.perf_counter()
            batches = islice(windows(streams, trainer.bptt, device), skip, None)
            watch = NonFiniteWatch(skip)
            for step, window in enumerate(batches, skip + 1):
                count = int(window.mask.sum())
                with context:
                    logits, state = model(window.inputs, window.mask, state)
                window_loss = _loss_sum(logits, window.targets, window.mask)
                loss = window_loss / max(count, 1)
                optimizer_step(loss, model, optimizer, scaler, trainer.grad_clip)
                state = detach_state(state)  # truncated BPTT: keep the values, cut the graph
                loss_sum += window_loss.detach()
                if step % trainer.log_every_n_steps == 0:
                    watch.check(loss_sum, step, epoch, checkpoint_dir)
                tokens += count
                progress.step(count, loss_sum)
                if stop.requested and step < steps:
                    progress.close()
                    here = ResumePoint(
                        epoch=epoch,
                        step=step,
                        loss_sum=loss_sum.item(),
                        seen=tokens,
                        seconds=before + time.perf_counter() - started,
                        best_value=result.best_value,
                        best_epoch=result.best_epoch,
                        bad_epochs=at.bad_epochs,
                        carried=_to_device(state, torch.device("cpu")),
                    )
                    here.capture_rng()
                    path = save_atomic(payload(here, {}, False), checkpoint_dir / "last.pt")
                    where = f"in epoch {epoch} after window {step}"
                    raise TrainingInterrupted(stop.signal_name or "SIGINT", str(path), where)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = before + time.perf_counter() - started
            progress.close()
            watch.check(loss_sum, steps, epoch, checkpoint_dir)
            train = LMEvaluation(loss_sum.item(), tokens)
            check_finite(train.loss, epoch, checkpoint_dir)
            validation = evaluate_lm(
                model,
                validation_ids,
                batch_size=trainer.eval_batch_size,
                bptt=trainer.bptt,
                pad_id=pad_id,
                device=device,
                autocast=amp,
            )
            metrics = {
                **train.metrics("train", char_level),
                "train/tokens_per_s": tokens / max(seconds, 1e-9),
                "train/epoch_seconds": seconds,
                "train/lr": lr,
                **validation.metrics("val", char_level),
            }
            if trainer.monitor not in metrics:
                raise ConfigError(
                    f"trainer.monitor={trainer.monitor!r} is not a language-model metric. Choose "
                    f"one of: {', '.join(sorted(metrics))}."
                )
            result.history.append({"epoch": epoch, **metrics})
            value = metrics[trainer.monitor]
            is_best = improved(value, result.best_value, trainer.monitor_mode)
            bad_epochs = 0 if is_best else at.bad_epochs + 1
            if is_best:
                result.best_value, result.best_epoch = value, epoch
            schedule.end_epoch(is_best)
            stopping = bool(trainer.patience and bad_epochs >= trainer.patience)
            finished = stopping or epoch == trainer.max_epochs
            at = ResumePoint(
                epoch=epoch + 1,
                best_value=result.best_value,
                best_epoch=result.best_epoch,
                bad_epochs=bad_epochs,
            )
            at.capture_rng()
            saved = payload(at, metrics, finished)
            result.last_path = save_atomic(saved, checkpoint_dir / "last.pt")
            if is_best:
                result.best_path = save_atomic(saved, checkpoint_dir / "best.pt")
            extra = f"  val/bpc {metrics['val/bpc']:.3f}" if char_level else ""
            print(
                f"epoch {epoch}: train/perplexity {train.perplexity:.2f}  "
                f"val/perplexity {validation.perplexity:.2f}{extra}  lr {lr:.4g}  "
                f"{metrics['train/tokens_per_s']:,.0f} tokens/s  {seconds:.1f}s"
                + ("  *" if is_best else ""),
                flush=True,
            )
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if stopping:
                print(
                    f"early stopping: {trainer.monitor} did not improve for {bad_epochs} epochs "
                    f"(best {result.best_value:.4f} at epoch {result.best_epoch})",
                    flush=True,
                )
                break
            if stop.requested and not finished:
                raise TrainingInterrupted(
                    stop.signal_name or "SIGINT", str(result.last_path), f"after epoch {epoch}"
                )
    return result


def _to_device(state: Any, device: torch.device) -> Any:
    """A recurrent state (tensors, or tuples / lists of them) moved to ``device``."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.to(device)
    return type(state)(_to_device(s, device) for s in state)
