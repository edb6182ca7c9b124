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
batches, every process's own random states (torch CPU and CUDA for dropout, Python's and
numpy's; under torchrun rank 0 gathers them all), the partial loss sums, the early-stopping
state and, for language models, the carried recurrent state. Restored, the loop repeats the same
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


class _SignalScope:
    """A context in which SIGINT and SIGTERM go to :meth:`_handle` (in the main thread; signal
    handlers can be set nowhere else); the previous handlers come back on exit."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
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


class StopAtOnce(_SignalScope):
    """A context in which SIGINT/SIGTERM raise :class:`RunInterrupted`; the first signal puts
    back the previous handlers, so a second one during the clean-up stops the process."""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._restore()
        raise RunInterrupted(signal.Signals(signum).name)


class StopRequest(_SignalScope):
    """A context in which SIGINT/SIGTERM ask training to stop at the next step boundary."""

    def __init__(self) -> None:
        super().__init__()
        self.signal_name: str | None = None

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


@dataclass
class ResumePoint:
    """Where a training loop stands: saved in every ``last.pt`` under ``"resume"``."""

    epoch: int = 1  # the epoch to run (or go on with)
    step: int = 0  # batches (windows) of that epoch already done
    order_state: torch.Tensor | None = None  # generator state before this epoch's order
    rng_state: torch.Tensor | None = None  # rank 0's torch CPU random state (dropout)
    cuda_rng_state: list[torch.Tensor] = field(default_factory=list)  # rank 0's
    rank_rng: list[dict[str, Any]] = field(default_factory=list)  # every rank's, by rank
    loss_sum: float = 0.0  # this epoch's partial sums
    seen: int = 0
    seconds: float = 0.0
    best_value: float = float("nan")
    best_epoch: int = 0
    bad_epochs: int = 0
    carried: Any = None  # language models: the recurrent state carried into the next window

    def capture_rng(self, job: Any = None) -> None:
        """Record every process's random state. Under torchrun each rank draws its own
        dropout masks, so all ranks' states are gathered (a collective: every rank calls
        this at the same point) and rank 0 saves them all in its one ``last.pt``."""
        own = rng_snapshot()
        states = [own]
        if job is not None and job.enabled:
            states = [None] * job.world_size
            torch.distributed.all_gather_object(states, own)
        self.rank_rng = states
        self.rng_state, self.cuda_rng_state = states[0]["torch"], states[0]["cuda"]

    def restore_rng(self, rank: int = 0, world_size: int = 1, fallback_seed: int = 0) -> str:
        """Put back this rank's own random state; return a note ("" when exact).

        A checkpoint written by another number of processes has no state for some ranks
        (or states meant for others): rank 0 restores its own, the others seed
        ``fallback_seed`` + rank, and the note says the continuation is not exact."""
        if len(self.rank_rng) == world_size:
            rng_restore(self.rank_rng[rank])
            return ""
        saved = len(self.rank_rng) or 1
        if rank == 0 or not self.rank_rng:
            rng_restore(self.rank_rng[0] if self.rank_rng else self._legacy())
        if rank > 0:
            torch.manual_seed(fallback_seed + 7919 * rank + 104729 * self.epoch + self.step)
        return (
            f"the checkpoint was written by {saved} process(es), this run has {world_size}: "
            "rank 0 goes on with its saved random state, the other ranks draw new dropout "
            "masks, so the run goes on correctly but is not the exact continuation. Resume "
            f"with {saved} process(es) (torchrun --nproc_per_node={saved}) for that."
        )

    def _legacy(self) -> dict[str, Any]:
        """A checkpoint from before per-rank states: rank 0's torch states alone."""
        return {"torch": self.rng_state, "cuda": self.cuda_rng_state}

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ResumePoint:
        known = {k: v for k, v in state.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def rng_snapshot() -> dict[str, Any]:
    """This process's random states: torch CPU and CUDA, Python's ``random`` and numpy's
    global generator, as plain data a ``weights_only`` load accepts."""
    import random

    import numpy as np

    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }


def rng_restore(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_snapshot` recorded (the parts it holds)."""
    import random

    import numpy as np

    if state.get("torch") is not None:
        torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():  # the devices this machine has
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    if state.get("python") is not None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    numpy_state = state.get("numpy")
    if numpy_state:
        keys = numpy_state["keys"].numpy().astype(np.uint32)
        np.random.set_state(
            (
                numpy_state["kind"],
                keys,
                numpy_state["pos"],
                numpy_state["has_gauss"],
                numpy_state["cached"],
            )
        )
