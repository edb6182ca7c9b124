"""The few lines a run opens with: which task on which data, what the command line changed,
the seed and device, the run's name and where to see it. The data's split sizes follow in the
task's own ``data:`` line, printed as soon as it has read them (one place for them)."""

from __future__ import annotations

from typing import Any

from pipeline.run.identity import hydra_job


def header_lines(ctx: Any, overrides: list[str] | None) -> list[str]:
    """The header of the run ``ctx`` (a started ``RunContext``; ``overrides``: the Hydra
    job's command-line overrides, None outside Hydra)."""
    cfg, tracker = ctx.cfg, ctx.tracker
    name = tracker.run_name or "untracked"
    title = f"== {name}: task {ctx.task.name} on data {cfg.data.name} =="
    changed = " ".join(overrides) if overrides else "none (the defaults)"
    resumed = f" · resumed from {ctx.checkpoint_dir}/last.pt" if ctx.resumed is not None else ""
    lines = [
        title,
        f"  overrides  {changed}",
        f"  seed {ctx.seed} · device {ctx.device} · outputs {ctx.out_dir}{resumed}",
    ]
    init_from = getattr(ctx, "init_from", None)
    if init_from is not None and init_from.tags:
        how = "" if init_from.loaded else " (not loaded again: resumed from last.pt)"
        lines.append(f"  init from  {init_from.origins()}{how}")
    if tracker.run_id and hasattr(tracker, "ui_command"):
        lines.append(f"  see it     {tracker.ui_command()}")  # the run's page, or mlflow ui
    else:
        lines.append(f"  {tracker.describe()}")  # tracking off
    return lines


def print_header(ctx: Any) -> None:
    """Print the header (rank 0 alone speaks under torchrun: the others' stdout is closed)."""
    overrides, _ = hydra_job()
    print("\n".join(header_lines(ctx, overrides)), flush=True)
