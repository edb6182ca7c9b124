"""The training loop: a plain torch loop, as fast as one written by hand.

Length-bucketed batches, fused optimizers where torch has them, the loss accumulated on
the device (read only when the progress display refreshes), gradient clipping, AMP on
CUDA, early stopping on a validation metric, and ``last.pt`` / ``best.pt`` written
atomically after every epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config.schemas import OptimizerConfig, TrainerConfig
from pipeline.data.batching import EncodedSplit, batch_order, iterate_batches
from pipeline.errors import ConfigError, PipelineError
from pipeline.model.checkpoint import save_atomic
from pipeline.runtime.distributed import Distributed
from pipeline.training.evaluate import Evaluation, evaluate
from pipeline.training.interrupts import ResumePoint, StopRequest, TrainingInterrupted
from pipeline.training.progress import Progress
from pipeline.training.schedule import EpochSchedule


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    best_epoch: int = 0
    best_value: float = float("nan")
    best_path: Path | None = None
    last_path: Path | None = None
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.device={name} but no CUDA GPU is available here. Use "
            "trainer.device=auto or trainer.device=cpu."
        )
    return torch.device(name)


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16; None (full precision) on CPU or amp off."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


#: Under torchrun the processes agree on a stop request (SIGINT / SIGTERM) with an all-reduce,
#: which makes the host wait for the device: it runs every this many steps, not every step.
STOP_POLL_STEPS = 10


def make_optimizer(params, cfg: OptimizerConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW / Adam / SGD, fused where torch supports it on this device."""
    params = list(params)
    fused = cfg.fused
    if fused is None:
        fused = device.type in ("cuda", "cpu") and cfg.name in ("adamw", "adam", "sgd")
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.name == "sgd":
        kwargs["momentum"] = cfg.momentum
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[cfg.name]
    if fused:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass  # this torch build has no fused kernel for the device: use foreach
    return cls(params, **kwargs)


def optimizer_step(
    loss: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    grad_clip: float,
) -> None:
    """Backward, clip the gradient norm (after unscaling fp16 gradients), step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if grad_clip > 0:
        clip_gradients(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float) -> None:
    """``clip_grad_norm_``, minus its rescaling pass on CPU when nothing needs clipping.

    torch rescales every gradient by ``min(max_norm / (norm + 1e-6), 1)``, a full read and
    write of each gradient even when that factor is exactly 1 (about 3% of a step of the
    seed model). On CPU, reading the norm waits for nothing, so the pass is skipped when
    the factor is 1: the result is bit-identical. On GPUs the check would stall the host,
    so torch's own function runs there.
    """
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return
    if params[0].device.type != "cpu" or not hasattr(nn.utils, "get_total_norm"):  # torch<2.6
        nn.utils.clip_grad_norm_(params, max_norm)
        return
    total = nn.utils.get_total_norm([p.grad for p in params])
    if not float(total) + 1e-6 <= max_norm:  # also NaN / inf: rescale, as torch does
        nn.utils.clip_grads_with_norm_(params, max_norm, total)


class NonFiniteWatch:
    """Finds a NaN or infinite loss with no work per step: any such step makes the epoch's
    running loss sum non-finite, and :meth:`check` reads that sum every
    ``log_every_n_steps`` steps (when the progress display reads it anyway) and at epoch
    end. The message names the steps since the last good read."""

    def __init__(self, start_step: int = 0) -> None:
        self.good = start_step  # the last step at which the sum was read and finite

    def check(self, loss_sum: torch.Tensor, step: int, epoch: int, checkpoint_dir: Path) -> None:
        if math.isfinite(float(loss_sum)):
            self.good = step
            return
        where = (
            f"at step {step}"
            if step == self.good + 1
            else f"between steps {self.good + 1} and {step}"
        )
        last = Path(checkpoint_dir) / "last.pt"
        kept = (
            f"The last good checkpoint, {last}, is kept."
            if last.is_file()
            else "No checkpoint had been written yet."
        )
        raise PipelineError(
            f"The training loss became NaN or infinite {where} of epoch {epoch}; training "
            "stopped. Likely causes: a learning rate too high (lower optimizer.lr), too weak "
            "gradient clipping (trainer.grad_clip), or fp16 overflow (trainer.amp=false). "
            f"{kept}"
        )


def epoch_sums(job: Distributed, loss_sum: torch.Tensor, seen: int) -> torch.Tensor:
    """[summed loss, rows seen] so far this epoch, over every process (float64)."""
    local = torch.stack([loss_sum.double(), loss_sum.new_tensor(seen, dtype=torch.float64)])
    return job.sum(local)


def check_finite(train_loss: float, epoch: int, checkpoint_dir: Path) -> None:
    """A NaN or infinite epoch loss stops training with the likely causes."""
    if not math.isfinite(train_loss):
        raise PipelineError(
            f"The training loss became {train_loss} in epoch {epoch}. Likely causes: a "
            "learning rate too high (lower optimizer.lr), too weak gradient clipping "
            "(trainer.grad_clip), or fp16 overflow (trainer.amp=false). The last good "
            f"checkpoint is kept in {checkpoint_dir}."
        )


def improved(value: float, best: float, mode: str) -> bool:
    if math.isnan(best):
        return not math.isnan(value)
    return value > best if mode == "max" else value < best


def fit(
    model: nn.Module,
    train: EncodedSplit,
    validation: EncodedSplit,
    *,
    trainer: TrainerConfig,
    optimizer_cfg: OptimizerConfig,
    num_classes: int,
    device: torch.device,
    seed: int,
    checkpoint_dir: Path,
    checkpoint_extra: dict[str, Any] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    resume: dict[str, Any] | None = None,
    job: Distributed | None = None,
) -> FitResult:
    """Train ``model``; return its history and where the best and last checkpoints are.

    ``resume`` is a ``last.pt`` payload: training goes on from the exact step it stopped at.
    SIGINT / SIGTERM stop it at the next step with ``last.pt`` saved (``TrainingInterrupted``).
    Under torchrun (``job``), each process trains on its share of every global batch through
    DistributedDataParallel; see ``pipeline.runtime.distributed``.
    """
    job = job or Distributed()
    model.to(device)
    net = model
    if job.enabled:
        from torch.nn.parallel import DistributedDataParallel

        if job.rank > 0:  # its own dropout masks (the weights come from rank 0)
            torch.manual_seed(seed + 7919 * job.rank)

        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if trainer.compile:
        net = torch.compile(net, dynamic=True)  # ragged batches: one graph for all lengths
    optimizer = make_optimizer(model.parameters(), optimizer_cfg, device)
    schedule = EpochSchedule(optimizer, optimizer_cfg)
    amp_dtype = autocast_dtype(device, trainer.amp)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    generator = torch.Generator().manual_seed(seed)
    result = FitResult()
    checkpoint_dir = Path(checkpoint_dir)
    monitor = trainer.monitor
    at = ResumePoint(order_state=generator.get_state())
    if resume is not None:
        at = restore(resume, model, optimizer, schedule, scaler, result, checkpoint_dir)

    def payload(point: ResumePoint, metrics: dict[str, float], finished: bool) -> dict:
        return training_state(
            model, optimizer, schedule, scaler, point, metrics, result.history, finished
        ) | (checkpoint_extra or {})

    with StopRequest() as stop:
        for epoch in range(at.epoch, trainer.max_epochs + 1):
            model.train()
            lr = schedule.start_epoch(epoch)
            order_state = at.order_state if at.order_state is not None else generator.get_state()
            generator.set_state(order_state)
            order = batch_order(
                train.lengths,
                trainer.batch_size,
                shuffle=True,
                bucket_size=trainer.bucket_size,
                generator=generator,
            )
            skip = at.step if epoch == at.epoch else 0
            progress = Progress(
                len(order),
                f"epoch {epoch}/{trainer.max_epochs}",
                trainer.progress if job.is_main else "none",
                trainer.log_every_n_steps,
            )
            # A resumed epoch's partial sums are over every process: rank 0 carries them.
            carried = bool(skip) and job.is_main
            loss_sum = torch.full((), at.loss_sum if carried else 0.0, device=device)
            seen = at.seen if carried else 0
            before = at.seconds if skip else 0.0
            started = time.perf_counter()
            autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
            watch = NonFiniteWatch(skip)
            todo = [b for b in order[skip:] if len(b) >= job.world_size]  # no empty shard
            shards = iterate_batches(train, [job.shard(b) for b in todo], device)
            for step, (rows, batch) in enumerate(zip(todo, shards, strict=True), skip + 1):
                with autocast:
                    logits = net(batch.ids, batch.mask)
                summed = F.cross_entropy(logits.float(), batch.labels, reduction="sum")
                # the mean over the global batch once DDP has averaged the processes' gradients
                loss = summed * (job.world_size / len(rows))
                optimizer_step(loss, model, optimizer, scaler, trainer.grad_clip)
                loss_sum += summed.detach()
                if step % trainer.log_every_n_steps == 0:
                    watch.check(loss_sum, step, epoch, checkpoint_dir)
                seen += len(batch)
                progress.step(len(batch), loss_sum)
                requested = stop.requested
                if job.enabled:  # every process stops at the same step, or none does
                    requested = step % STOP_POLL_STEPS == 0 and job.any(requested, device)
                if requested and step < len(order):
                    progress.close()
                    partial = epoch_sums(job, loss_sum, seen).tolist()  # every process's rows
                    here = ResumePoint(
                        epoch=epoch,
                        step=step,
                        order_state=order_state,
                        loss_sum=partial[0],
                        seen=int(partial[1]),
                        seconds=before + time.perf_counter() - started,
                        best_value=result.best_value,
                        best_epoch=result.best_epoch,
                        bad_epochs=at.bad_epochs,
                    )
                    here.capture_rng()
                    path = checkpoint_dir / "last.pt"
                    if job.is_main:
                        save_atomic(payload(here, {}, False), path)
                    where = f"in epoch {epoch} after step {step}"
                    raise TrainingInterrupted(stop.signal_name or "SIGINT", str(path), where)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = before + time.perf_counter() - started
            progress.close()
            watch.check(loss_sum, step if todo else skip, epoch, checkpoint_dir)
            if job.enabled:  # the whole epoch's loss, over every process's rows
                totals = epoch_sums(job, loss_sum, seen)
                loss_sum, seen = totals[0], int(totals[1])
            train_loss = (loss_sum / max(seen, 1)).item()
            check_finite(train_loss, epoch, checkpoint_dir)

            evaluation: Evaluation = evaluate(
                model,
                validation,
                batch_size=trainer.eval_batch_size,
                device=device,
                num_classes=num_classes,
                autocast_dtype=amp_dtype,
            )
            metrics = {
                "train/loss": train_loss,
                "train/samples_per_s": seen / max(seconds, 1e-9),
                "train/epoch_seconds": seconds,
                "train/lr": lr,
                **evaluation.metrics("val"),
            }
            if monitor not in metrics:
                raise ConfigError(
                    f"trainer.monitor={monitor!r} is not a metric. Choose one of: "
                    f"{', '.join(sorted(metrics))}."
                )
            result.history.append({"epoch": epoch, **metrics})

            value = metrics[monitor]
            is_best = improved(value, result.best_value, trainer.monitor_mode)
            bad_epochs = 0 if is_best else at.bad_epochs + 1
            if is_best:
                result.best_value, result.best_epoch = value, epoch
            schedule.end_epoch(is_best)
            stopping = bool(trainer.patience and bad_epochs >= trainer.patience)
            at = ResumePoint(
                epoch=epoch + 1,
                order_state=generator.get_state(),
                best_value=result.best_value,
                best_epoch=result.best_epoch,
                bad_epochs=bad_epochs,
            )
            at.capture_rng()
            finished = stopping or epoch == trainer.max_epochs
            result.last_path = checkpoint_dir / "last.pt"
            if is_best:
                result.best_path = checkpoint_dir / "best.pt"
            if job.is_main:
                state = payload(at, metrics, finished)
                save_atomic(state, result.last_path)
                if is_best:
                    save_atomic(state, result.best_path)
            print(
                f"epoch {epoch}: train/loss {train_loss:.4f}  val/loss {evaluation.loss:.4f}  "
                f"val/accuracy {evaluation.accuracy:.4f}  val/f1 {evaluation.f1:.4f}  "
                f"{metrics['train/samples_per_s']:,.0f} samples/s  {seconds:.1f}s"
                + ("  *" if is_best else ""),
                flush=True,
            )
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if stopping:
                result.stopped_early = True
                print(
                    f"early stopping: {monitor} did not improve for {bad_epochs} epochs "
                    f"(best {result.best_value:.4f} at epoch {result.best_epoch})",
                    flush=True,
                )
                break
            requested = job.any(stop.requested, device) if job.enabled else stop.requested
            if requested and not finished:
                raise TrainingInterrupted(
                    stop.signal_name or "SIGINT", str(result.last_path), f"after epoch {epoch}"
                )
    return result


def training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: EpochSchedule,
    scaler: torch.amp.GradScaler | None,
    point: ResumePoint,
    metrics: dict[str, float],
    history: list[dict[str, float]],
    finished: bool,
) -> dict[str, Any]:
    """What ``last.pt`` holds: the weights, the optimizer and where training stands."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": point.epoch - 1 if point.step == 0 else point.epoch,
        "metrics": metrics,
        "history": history,
        "resume": point.state_dict(),
        "finished": finished,
    }


def restore(
    payload: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: EpochSchedule,
    scaler: torch.amp.GradScaler | None,
    result: Any,
    checkpoint_dir: Path,
) -> ResumePoint:
    """Load a ``last.pt`` payload into the training objects; return where to go on from."""
    if "resume" not in payload:
        raise PipelineError(
            "This checkpoint has no resume state (it was written before resuming existed, or it "
            "is a best.pt): resume from the run's last.pt."
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    schedule.load_state_dict(payload["schedule"])
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    at = ResumePoint.from_state_dict(payload["resume"])
    result.history = list(payload.get("history", []))
    result.best_value, result.best_epoch = at.best_value, at.best_epoch
    if (checkpoint_dir / "best.pt").is_file():
        result.best_path = checkpoint_dir / "best.pt"
    at.restore_rng()
    return at
