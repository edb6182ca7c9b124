"""Progress reporting: a live bar on a terminal, plain log lines elsewhere.

The loss lives on the device; it is read (a host sync) only when the display refreshes,
at most twice a second, so the bar costs the training loop nothing measurable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor  # annotations only: the run summary and `runs` need no torch


class Progress:
    """One epoch's progress: steps done, samples per second, live loss."""

    def __init__(
        self,
        total_steps: int,
        description: str,
        mode: str = "auto",
        log_every: int = 100,
        unit: str = "samples",
        epochs_after: int = 0,
        epoch_overhead: float = 0.0,
    ) -> None:
        mode = display_mode(mode)
        self.mode, self.total, self.log_every = mode, total_steps, log_every
        # For the whole run's ETA: epochs still to come after this one, and the seconds each
        # epoch takes beyond its steps (validation, checkpoints; measured on the last one).
        self.epochs_after, self.epoch_overhead = epochs_after, epoch_overhead
        self.description, self.unit = description, unit
        self.steps = self.samples = 0
        self.start = self._last_refresh = time.perf_counter()
        self._bar = None
        if mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_steps,
                desc=description,
                unit="batch",
                dynamic_ncols=True,
                leave=True,
                file=sys.stderr,
            )

    def step(self, samples: int, loss_sum: Tensor) -> None:
        """Record one step. ``loss_sum`` is the epoch's summed loss, still on the device:
        it is read (a host sync) only when the display refreshes."""
        read_loss = lambda: loss_sum.item() / max(self.samples, 1)  # noqa: E731
        self.steps += 1
        self.samples += samples
        if self.mode == "bar":
            now = time.perf_counter()
            if now - self._last_refresh >= 0.5 or self.steps == self.total:
                self._bar.set_postfix(
                    loss=f"{read_loss():.4f}",
                    **{f"{self.unit}_per_s": f"{self.throughput():,.0f}"},
                    run_eta=duration(self.run_eta()),
                    refresh=False,
                )
                self._bar.update(self.steps - self._bar.n)
                self._last_refresh = now
        elif self.mode == "log" and (self.steps % self.log_every == 0):
            print(
                f"{self.description} step {self.steps}/{self.total} loss {read_loss():.4f} "
                f"{self.throughput():,.0f} {self.unit}/s  run ETA {duration(self.run_eta())}",
                file=sys.stderr,
                flush=True,
            )

    def throughput(self) -> float:
        return self.samples / max(time.perf_counter() - self.start, 1e-9)

    def run_eta(self) -> float:
        """Seconds until the whole run's last epoch ends, at this epoch's pace (early
        stopping may end it sooner)."""
        per_step = (time.perf_counter() - self.start) / max(self.steps, 1)
        this_epoch = (self.total - self.steps) * per_step + self.epoch_overhead
        return this_epoch + self.epochs_after * (self.total * per_step + self.epoch_overhead)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self.steps - self._bar.n)
            self._bar.close()


def display_mode(mode: str) -> str:
    """``auto``: a live bar on a terminal, log lines elsewhere; other modes as they are."""
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "log"
    return mode


@contextmanager
def evaluating(what: str, mode: str) -> Iterator[None]:
    """Say that ``what`` is being evaluated while it is: a status line a bar's terminal
    clears afterwards, or one log line (``trainer.progress=log``); nothing with ``none``."""
    mode = display_mode(mode)
    if mode == "bar":
        print(f"{what}: evaluating...", end="\r", file=sys.stderr, flush=True)
    elif mode == "log":
        print(f"{what}: evaluating", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        if mode == "bar":
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """``0.4s``, ``42s``, ``3m05s``, ``1h02m``: short, and exact enough to compare."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
