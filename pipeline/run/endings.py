"""How a run stopped by an exception ends: the status its tracked run gets (KILLED, FAILED,
or kept as it was for a refused resume) and what the user is told about what was saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def end_stopped(ctx: Any, result: Any, exc: BaseException) -> BaseException:
    """End the tracked run of a run stopped by ``exc``; return what to raise."""
    from pipeline.data.fingerprint import DataChanged
    from pipeline.run.resume import resume_command
    from pipeline.training.interrupts import RunInterrupted, TrainingInterrupted

    if isinstance(exc, DataChanged):  # a refused resume: the run keeps the status it had
        ctx.tracker.end("FINISHED" if exc.finished else "KILLED")
        return exc
    if isinstance(exc, TrainingInterrupted):
        ctx.tracker.end("KILLED", error=str(exc))
        return exc.with_command(resume_command(exc.checkpoint))
    if isinstance(exc, RunInterrupted):
        exc.detail = interrupted_detail(ctx, result)
        ctx.tracker.end("KILLED", error=str(exc))
    elif isinstance(exc, KeyboardInterrupt):
        ctx.tracker.end("KILLED", error="interrupted (KeyboardInterrupt)")
    else:
        from pipeline.runtime.determinism import nondeterministic_op

        ctx.tracker.end("FAILED", error=f"{type(exc).__name__}: {exc}")
        return nondeterministic_op(exc) or exc
    return exc


def interrupted_detail(ctx: Any, result: Any) -> str:
    """What a signal outside the training steps leaves, and how to go on (for its message)."""
    from pipeline.run.resume import resume_command

    last = Path(ctx.checkpoint_dir) / "last.pt"
    if result.trained:
        best = result.best_checkpoint or last
        return (
            f" after training, while testing and recording the model: the trained model is "
            f"saved in {best}, but its test metrics and logged model are not."
        )
    if ctx.resumed is not None:
        return (
            f" before training went on; {last} is unchanged. Resume with:\n  {resume_command(last)}"
        )
    return " before training started; nothing was saved. Run the same command to start again."
