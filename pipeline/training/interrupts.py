"""Stop training cleanly on SIGINT / SIGTERM, and pick up exactly where it stopped.

While :class:`StopRequest` is active, the first SIGINT (Ctrl-C) or SIGTERM only sets a
flag: the training loop finishes the step it is in, writes ``last.pt`` (atomically) with
everything needed to go on, and raises :class:`TrainingInterrupted`. The run is then marked
KILLED and the command to resume it is printed. A second signal stops at once.

Outside the loop's steps (reading and tokenizing data, building the model, testing and
logging it) there is no step to finish: while :class:`StopAtOnce` is active a signal raises
:class:`RunInterrupted` at once, so the run still ends KILLED with one line, not a
traceback (nor a run left RUNNING by SIGTERM's default of ending the process on the spot).

:class:`ResumePoint` (the resume point) records where the loop stood: the epoch in progress,
the batches of it already done, the state of the generator that shuffles that epoch's
batches, torch's random state (dropout), the partial loss sums, the early-stopping state
and, for language models, the carried recurrent state. Restored, the loop repeats the same
batches in the same order with the same random numbers, so on the CPU a resumed run ends
with exactly the metrics of one that was never interrupted.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

import torch

from pipeline.errors import PipelineError

SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class TrainingInterrupted(PipelineError):
    """Training stopped on a signal after saving ``last.pt``; the message says how to resume."""

    label = "stopped"

    def __init__(self, signal_name: str, checkpoint: str, where: str) -> None:
        self.signal_name, self.checkpoint, self.where = signal_name, checkpoint, where
        self.exit_code = SIGNAL_EXIT_CODES.get(signal_name, 130)
        self.resume_command = ""
        super().__init__(self._message())

    def with_command(self, command: str) -> TrainingInterrupted:
        self.resume_command = command
        self.args = (self._message(),)
        return self

    def _message(self) -> str:
        text = f"Interrupted ({self.signal_name}) {self.where}; saved {self.checkpoint}."
        if self.resume_command:
            text += f" Resume with:\n  {self.resume_command}"
        return text


class RunInterrupted(KeyboardInterrupt):
    """A signal outside the training steps: the run stops at once. A ``KeyboardInterrupt``,
    so that no library's ``except Exception`` swallows it; ``detail`` (set by the run) says
    what was saved and how to go on."""

    label = "stopped"

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = SIGNAL_EXIT_CODES.get(signal_name, 130)
        self.detail = ""

    def __str__(self) -> str:
        return f"Interrupted ({self.signal_name}){self.detail}"


class StopAtOnce:
    """A context in which SIGINT/SIGTERM raise :class:`RunInterrupted`; the first signal puts
    back the previous handlers, so a second one during the clean-up stops the process."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._restore()
        raise RunInterrupted(signal.Signals(signum).name)

    def __enter__(self) -> StopAtOnce:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __exit__(self, *exc: object) -> None:
        self._restore()


class StopRequest:
    """A context in which SIGINT/SIGTERM ask training to stop at the next step boundary."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:  # a second signal: stop now
            self._restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(SIGNAL_EXIT_CODES.get(name, 1))
        self.signal_name = name
        print(
            f"\n{name}: finishing the current step, then saving last.pt "
            "(send it again to stop at once)",
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __exit__(self, *exc: object) -> None:
        self._restore()


@dataclass
class ResumePoint:
    """Where a training loop stands: saved in every ``last.pt`` under ``"resume"``."""

    epoch: int = 1  # the epoch to run (or go on with)
    step: int = 0  # batches (windows) of that epoch already done
    order_state: torch.Tensor | None = None  # generator state before this epoch's order
    rng_state: torch.Tensor | None = None  # torch's CPU random state (dropout)
    cuda_rng_state: list[torch.Tensor] = field(default_factory=list)
    loss_sum: float = 0.0  # this epoch's partial sums
    seen: int = 0
    seconds: float = 0.0
    best_value: float = float("nan")
    best_epoch: int = 0
    bad_epochs: int = 0
    carried: Any = None  # language models: the recurrent state carried into the next window

    def capture_rng(self) -> None:
        self.rng_state = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            self.cuda_rng_state = torch.cuda.get_rng_state_all()

    def restore_rng(self) -> None:
        if self.rng_state is not None:
            torch.set_rng_state(self.rng_state)
        if self.cuda_rng_state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.cuda_rng_state)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ResumePoint:
        known = {k: v for k, v in state.items() if k in cls.__dataclass_fields__}
        return cls(**known)
