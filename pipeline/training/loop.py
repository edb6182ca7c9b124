"""The one training loop, for every task: a plain torch loop, as fast as one written by hand.

The task supplies the batches and the loss (``pipeline.contracts.Task``); the loop owns the
rest: the optimizer (fused where torch has it), AMP and loss scaling, gradient clipping,
DistributedDataParallel under torchrun, carried state (detached between steps: truncated
back-propagation through time), the running loss kept on the device (read only when the
progress display refreshes), stop requests (SIGINT / SIGTERM) with an exact resume point,
and the :class:`~pipeline.training.book.EpochBook` (best epoch, patience, checkpoints).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.contracts import Task
from pipeline.errors import PipelineError
from pipeline.model.checkpoint import Checkpoint
from pipeline.runtime.amp import apply_policy
from pipeline.runtime.determinism import configure_numerics
from pipeline.runtime.device import autocast
from pipeline.runtime.state import detach_state, state_for_checkpoint, state_from_checkpoint
from pipeline.training.averaging import WeightAverage
from pipeline.training.book import EpochBook
from pipeline.training.callbacks import Callback, GradualUnfreezing
from pipeline.training.context import RunContext
from pipeline.training.guards import NonFiniteWatch, check_finite
from pipeline.training.interrupts import ResumePoint, StopRequest, TrainingInterrupted
from pipeline.training.progress import Progress, evaluating
from pipeline.training.schedule import EpochSchedule
from pipeline.training.step import describe_lrs, make_optimizer, optimizer_step, parameter_groups
from pipeline.training.wrap import wrap_model

#: Under torchrun the processes agree on a stop request (SIGINT / SIGTERM) with an all-reduce,
#: which makes the host wait for the device: it runs every this many steps, not every step.
STOP_POLL_STEPS = 10


@dataclass
class EpochRun:
    """One epoch's training: summed loss and items over every process, and its seconds."""

    loss_sum: float
    seen: int
    seconds: float


def fit(
    task: Task, model: nn.Module, ctx: RunContext, callbacks: Sequence[Callback] = ()
) -> EpochBook:
    """Train ``model`` on ``task``; return the EpochBook (history, best epoch, checkpoints).

    ``ctx.resumed`` is a ``last.pt`` payload: training goes on from the exact step it stopped
    at. SIGINT / SIGTERM stop it at the next step with ``last.pt`` saved
    (``TrainingInterrupted``). Under torchrun each process trains on its share of every
    global batch through DistributedDataParallel; see ``pipeline.runtime.distributed``.
    """
    return _Loop(task, model, ctx, callbacks).run()


class _Loop:
    def __init__(
        self, task: Task, model: nn.Module, ctx: RunContext, callbacks: Sequence[Callback]
    ) -> None:
        self.task, self.model, self.ctx, self.callbacks = task, model, ctx, list(callbacks)
        trainer, device = ctx.trainer, ctx.device
        configure_numerics(device, tf32=trainer.tf32, deterministic=trainer.deterministic)
        model.to(device)  # after: cuBLAS reads CUBLAS_WORKSPACE_CONFIG when it first runs
        policy = ctx.amp_policy  # see pipeline.runtime.amp: RNNs in fp32 outside autocast
        apply_policy(model, policy)
        self.net = wrap_model(model, ctx)
        groups = parameter_groups(model, ctx.optimizer)  # per layer: optimizer.layer_lr_decay
        self.optimizer = make_optimizer(groups, ctx.optimizer, device)
        if len(self.optimizer.param_groups) > 1 and ctx.job.is_main:
            print(f"layer learning rates: {describe_lrs(self.optimizer)}", flush=True)
        if trainer.unfreeze == "gradual":  # first: the others see the epoch's frozen layers
            self.callbacks.insert(0, GradualUnfreezing(model, speaks=ctx.job.is_main))
        self.schedule = EpochSchedule(
            self.optimizer,
            ctx.optimizer,
            lambda: trainer.max_epochs * task.train_batches(1, 0).steps,  # per-step only
        )
        self.average = WeightAverage(model, ctx.optimizer)
        self.amp = policy.dtype
        self.scaler = torch.amp.GradScaler(device.type) if policy.grad_scaler else None
        self.book = EpochBook(
            trainer.monitor,
            trainer.monitor_mode,
            trainer.patience,
            Path(ctx.checkpoint_dir),
            writes=ctx.job.is_main,
        )
        self.overhead = 0.0  # seconds an epoch takes beyond its steps (validation...)
        self.legend_shown = False  # the line that explains the epoch lines' "*"

    def run(self) -> EpochBook:
        at = ResumePoint()
        if self.ctx.resumed is not None:
            at = self._restore(self.ctx.resumed)
        with StopRequest() as self.stop:
            for epoch in range(at.epoch, self.ctx.trainer.max_epochs + 1):
                lr = self.schedule.start_epoch(epoch)
                for callback in self.callbacks:  # a task (a callback too) may have none
                    getattr(callback, "on_epoch_start", lambda *_: None)(epoch, self.model)
                started = time.perf_counter()
                trained = self._train_epoch(epoch, at if epoch == at.epoch else ResumePoint())
                ended = time.perf_counter()
                self.book.train_seconds += ended - started
                at = self._end_epoch(epoch, lr, trained)
                self.overhead = time.perf_counter() - ended  # for the next epochs' run ETA
                if self.book.stopped_early:
                    break
        self.average.finish()
        return self.book

    def _train_epoch(self, epoch: int, at: ResumePoint) -> EpochRun:
        """Steps ``at.step + 1`` onward of ``epoch``; stop (saving last.pt) when asked to."""
        ctx, job, trainer = self.ctx, self.ctx.job, self.ctx.trainer
        self.model.train()
        epoch_batches = self.task.train_batches(epoch, at.step)
        progress = Progress(
            epoch_batches.steps,
            f"epoch {epoch}/{trainer.max_epochs}",
            trainer.progress if job.is_main else "none",
            trainer.log_every_n_steps,
            unit=self.task.unit,
            epochs_after=trainer.max_epochs - epoch,
            epoch_overhead=self.overhead,
        )
        # A resumed epoch's partial sums are over every process: rank 0 carries them.
        carried = bool(at.step) and job.is_main
        loss_sum = torch.full((), at.loss_sum if carried else 0.0, device=ctx.device)
        seen = at.seen if at.step else 0
        state = state_from_checkpoint(at.carried, ctx.device) if at.step else None
        started, watch, step = time.perf_counter(), NonFiniteWatch(at.step), at.step
        for step, batch in enumerate(epoch_batches.batches, at.step + 1):
            with autocast(ctx.device, self.amp):
                summed, count, state = self.task.loss(self.net, batch, state)
            loss = summed.float() * (job.world_size / max(count, 1))
            lr_scale = self._lr_scale(batch)
            optimizer_step(
                loss, self.model, self.optimizer, self.scaler, trainer.grad_clip, lr_scale
            )
            self.schedule.step()
            self.average.step()
            state = detach_state(state)
            loss_sum += summed.detach().float()
            if step % trainer.log_every_n_steps == 0:
                watch.check(loss_sum, step, epoch, self.book.checkpoint_dir)
            seen += count
            progress.step(count, loss_sum)
            if self._stop_requested(step) and step < epoch_batches.steps:
                progress.close()
                seconds = at.seconds + time.perf_counter() - started
                self._interrupt(epoch, step, loss_sum, seen, seconds, state)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        seconds = at.seconds + time.perf_counter() - started
        progress.close()
        watch.check(loss_sum, step, epoch, self.book.checkpoint_dir)
        return EpochRun(float(job.sum(loss_sum.double())), seen, seconds)

    def _lr_scale(self, batch: Any) -> float:
        """The task's optional per-step lr factor (``lr_scale(batch)``: the LM task's
        ``trainer.bptt_jitter`` scales by window length); 1 when it has none."""
        scale = getattr(self.task, "lr_scale", None)
        return 1.0 if scale is None else float(scale(batch))

    def _stop_requested(self, step: int) -> bool:
        """Every process stops at the same step, or none does."""
        job = self.ctx.job
        if not job.enabled:
            return self.stop.requested
        return step % STOP_POLL_STEPS == 0 and job.any(self.stop.requested, self.ctx.device)

    def _interrupt(
        self, epoch: int, step: int, loss_sum: torch.Tensor, seen: int, seconds: float, state: Any
    ) -> None:
        here = ResumePoint(
            epoch=epoch,
            step=step,
            loss_sum=float(self.ctx.job.sum(loss_sum.double())),  # every process's items
            seen=seen,
            seconds=seconds,
            best_value=self.book.best_value,
            best_epoch=self.book.best_epoch,
            bad_epochs=self.book.bad_epochs,
            carried=state_for_checkpoint(state),
        )
        here.capture_rng(self.ctx.job)
        path = self.book.checkpoint_dir / "last.pt"
        if self.ctx.job.is_main:
            self._checkpoint(here, {}, False).save(path)
        where = f"in epoch {epoch} after {getattr(self.task, 'step_name', 'step')} {step}"
        raise TrainingInterrupted(self.stop.signal_name or "SIGINT", str(path), where)

    def _end_epoch(self, epoch: int, lr: float, trained: EpochRun) -> ResumePoint:
        """Validate, book the epoch, write the checkpoints, print the epoch line."""
        book, trainer, task = self.book, self.ctx.trainer, self.task
        train_loss = trained.loss_sum / max(trained.seen, 1)
        check_finite(train_loss, epoch, book.checkpoint_dir)
        started, shown = time.perf_counter(), trainer.progress if self.ctx.job.is_main else "none"
        with evaluating(f"epoch {epoch}/{trainer.max_epochs} validation", shown):
            val = prefixed("val", task.evaluate(self.average.evaluated, "validation"))
        book.eval_seconds += time.perf_counter() - started
        metrics = {
            **task.train_metrics(train_loss),
            f"train/{task.unit}_per_s": trained.seen / max(trained.seconds, 1e-9),
            "train/epoch_seconds": trained.seconds,
            "train/lr": lr,
            **val,
        }
        is_best = book.record(epoch, metrics)
        self.schedule.end_epoch(is_best)
        if self.average.end_epoch(book.bad_epochs) and self.ctx.job.is_main:
            print(f"epoch {epoch}: weight averaging (NT-ASGD) starts", flush=True)
        finished = book.should_stop or epoch == trainer.max_epochs
        at = ResumePoint(
            epoch=epoch + 1,
            best_value=book.best_value,
            best_epoch=book.best_epoch,
            bad_epochs=book.bad_epochs,
        )
        at.capture_rng(self.ctx.job)
        book.save(self._checkpoint(at, metrics, finished), is_best)
        print(
            f"epoch {epoch}: {task.describe_epoch(metrics)}  "
            f"{metrics[f'train/{task.unit}_per_s']:,.0f} {task.unit}/s  {trained.seconds:.1f}s"
            + ("  *" if is_best else ""),
            flush=True,
        )
        if not self.legend_shown:  # once, with the first epoch line
            print(f"  (* = best {book.monitor} so far, saved to best.pt)", flush=True)
            self.legend_shown = True
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, metrics, self.model)
        if book.should_stop:
            book.stopped_early = True
            print(book.stop_message(), flush=True)
        elif self._stop_requested(0) and not finished:
            raise TrainingInterrupted(
                self.stop.signal_name or "SIGINT", str(book.last_path), f"after epoch {epoch}"
            )
        return at

    def _checkpoint(
        self, point: ResumePoint, metrics: dict[str, float], finished: bool
    ) -> Checkpoint:
        """What ``last.pt`` (and ``best.pt``) hold: weights, optimizer, where training stands,
        and what the run and the task add (config, labels, tokenizer...)."""
        return Checkpoint.of(
            {
                **self.ctx.checkpoint_extra,
                **self.task.checkpoint_extra(),
                "model": self.average.evaluated.state_dict(),  # averaged, if averaging
                "average": self.average.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "epoch": point.epoch - 1 if point.step == 0 else point.epoch,
                "metrics": metrics,
                "history": self.book.history,
                "resume": point.state_dict(),
                "finished": finished,
            }
        )

    def _restore(self, saved: Checkpoint) -> ResumePoint:
        """Load a ``last.pt`` into the training objects; return where to go on from."""
        if saved.resume is None or saved.optimizer is None:
            raise PipelineError(
                "This checkpoint has no resume state (it was written before resuming existed, "
                "or it is a served copy): resume from the run's last.pt."
            )
        self.average.restore(saved.model, saved.average)
        self.optimizer.load_state_dict(saved.optimizer)
        self.schedule.load_state_dict(saved.schedule or {})
        if self.scaler is not None and saved.scaler:
            self.scaler.load_state_dict(saved.scaler)
        at = ResumePoint.from_state_dict(saved.resume)
        self.book.restore(saved.history, at)
        job = self.ctx.job
        note = at.restore_rng(job.rank, job.world_size, self.ctx.seed)
        if note and job.is_main:
            print(f"note: {note}", flush=True)
        return at


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """``{"loss": x}`` -> ``{"val/loss": x}``."""
    return {f"{prefix}/{name}": value for name, value in metrics.items()}
