"""Progress reporting: a live bar on a terminal, plain log lines elsewhere.

The loss lives on the device; it is read (a host sync) only when the display refreshes,
at most twice a second, so the bar costs the training loop nothing measurable.
"""

from __future__ import annotations

import sys
import time

from torch import Tensor


class Progress:
    """One epoch's progress: steps done, samples per second, live loss."""

    def __init__(
        self,
        total_steps: int,
        description: str,
        mode: str = "auto",
        log_every: int = 100,
        unit: str = "samples",
    ) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode, self.total, self.log_every = mode, total_steps, log_every
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
                    refresh=False,
                )
                self._bar.update(self.steps - self._bar.n)
                self._last_refresh = now
        elif self.mode == "log" and (self.steps % self.log_every == 0):
            print(
                f"{self.description} step {self.steps}/{self.total} loss {read_loss():.4f} "
                f"{self.throughput():,.0f} {self.unit}/s",
                file=sys.stderr,
                flush=True,
            )

    def throughput(self) -> float:
        return self.samples / max(time.perf_counter() - self.start, 1e-9)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self.steps - self._bar.n)
            self._bar.close()
