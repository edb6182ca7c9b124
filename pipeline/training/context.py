"""The run context: everything a task and the training loop share about one run, typed,
instead of a dozen loose arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: building a context imports none of these
    import torch
    from omegaconf import DictConfig

    from pipeline.config.schemas import OptimizerConfig, TaskConfig, TrackingConfig, TrainerConfig
    from pipeline.model.checkpoint import Checkpoint
    from pipeline.runtime.amp import AmpPolicy
    from pipeline.runtime.distributed import Distributed
    from pipeline.tracking.tracker import Tracker


@dataclass
class RunContext:
    cfg: DictConfig  # the composed config: components read their own sections from it
    trainer: TrainerConfig
    optimizer: OptimizerConfig
    tracking: TrackingConfig
    task: TaskConfig
    device: torch.device
    job: Distributed
    tracker: Tracker
    out_dir: Path  # the run's output folder (Hydra's)
    checkpoint_dir: Path  # where last.pt / best.pt go
    seed: int = 42
    resumed: Checkpoint | None = None  # the last.pt this run goes on from
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)  # config, versions, run id
    init_from: Any = None  # model.init_from: the language model it starts from (InitFrom)

    @property
    def amp_policy(self) -> AmpPolicy:
        """This run's mixed precision: autocast dtype, RNNs in fp32 or not, loss scaling."""
        from pipeline.runtime.amp import policy_for

        return policy_for(self.device, self.trainer)

    @property
    def amp(self) -> torch.dtype | None:
        """The autocast dtype of this run (None: full precision)."""
        return self.amp_policy.dtype


def local_context(
    trainer: TrainerConfig,
    optimizer: OptimizerConfig | None = None,
    *,
    checkpoint_dir: str | Path,
    seed: int = 0,
    task: TaskConfig | None = None,
) -> RunContext:
    """A context for training in this process without Hydra or a tracker: tests, notebooks.

    One process on ``trainer.device``, tracking off, outputs beside the checkpoints.
    """
    from omegaconf import OmegaConf

    from pipeline.config.schemas import OptimizerConfig, TaskConfig, TrackingConfig
    from pipeline.runtime.device import resolve_device
    from pipeline.runtime.distributed import Distributed
    from pipeline.tracking.tracker import make_tracker

    tracking = TrackingConfig(name="none", log_model=False)
    return RunContext(
        cfg=OmegaConf.create({}),
        trainer=trainer,
        optimizer=optimizer or OptimizerConfig(),
        tracking=tracking,
        task=task or TaskConfig(sample_tokens=0),
        device=resolve_device(trainer.device),
        job=Distributed(),
        tracker=make_tracker(tracking),
        out_dir=Path(checkpoint_dir),
        checkpoint_dir=Path(checkpoint_dir),
        seed=seed,
    )
