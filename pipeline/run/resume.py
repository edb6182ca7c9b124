"""``trainer.resume=<last.pt | run id | auto>``: find the checkpoint to go on from, and check
that it belongs to the run described by the current config.

* a path: that ``last.pt`` (or the ``last.pt`` in that folder);
* an MLflow run id: the ``last.pt`` in the folder its ``checkpoint_dir`` tag names;
* ``auto``: the newest unfinished ``last.pt`` under ``./outputs`` and ``./multirun`` whose
  config is this run's.

A checkpoint from another config is refused with the keys that differ. Keys that do not
change what is computed (progress display, threads, tracking, the device, compiling) may
differ, and so may ``trainer.max_epochs``, so that a finished schedule can be extended.

Only the newest checkpoint of a run goes on: a ``best.pt`` (or an older copy) behind its
run's ``last.pt`` would rewind training, overwrite that ``last.pt`` and log epochs twice into
the run. Nor is a FINISHED MLflow run reopened, unless its final ``last.pt`` is trained
longer (a higher ``trainer.max_epochs``).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

#: Config keys (or prefixes ending in ".") a resumed run may change.
MAY_DIFFER = (
    "trainer.resume",
    "trainer.progress",
    "trainer.log_every_n_steps",
    "trainer.num_threads",
    "trainer.max_epochs",
    "trainer.device",  # e.g. a run stopped on a GPU machine goes on on the CPU
    "trainer.compile",
    "trainer.checkpoint_dir",
    "trainer.data_on_device",  # where the batches are indexed, not what they hold
    "tracking.",
)
_RUN_ID = re.compile(r"[0-9a-f]{32}")


def config_differences(
    saved: dict[str, Any], current: dict[str, Any], suggested: dict[str, Any] | None = None
) -> list[str]:
    """``key: saved -> current`` for every key that differs and must not. ``suggested``: the
    settings the data suggested to the saved run; they differ from a current value left at
    its default because the run applies them again once it has read the (same) data."""
    from pipeline.config.schemas import schema_default
    from pipeline.tracking.tracker import flatten

    a, b = flatten(saved), flatten(current)
    differences = []
    for key in sorted(set(a) | set(b)):
        if any(key == p or (p.endswith(".") and key.startswith(p)) for p in MAY_DIFFER):
            continue
        if key not in a and key in b and b[key] == schema_default(key, current):
            continue  # a setting added since the checkpoint was written, left at its default
        if key in (suggested or {}) and a.get(key) == suggested[key]:
            if b.get(key) == schema_default(key, current):
                continue  # the data suggested it then, and will again
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            differences.append(f"{key}: {a.get(key, '<absent>')} -> {b.get(key, '<absent>')}")
    return differences


def find_checkpoint(value: str, current: dict[str, Any], tracking_uri: str | None) -> Path:
    """The ``last.pt`` that ``trainer.resume=value`` names."""
    if value == "auto":
        return _newest_unfinished(current)
    path = Path(value).expanduser()
    if path.is_dir():
        path = path / "last.pt"
    if path.is_file():
        return path
    if _RUN_ID.fullmatch(value):
        return _from_run(value, tracking_uri)
    raise PipelineError(
        f"trainer.resume={value}: no such checkpoint. Give the last.pt an interrupted run "
        "wrote (its path is printed when it stops), its output folder, its MLflow run id, or "
        "trainer.resume=auto."
    )


def _newest_unfinished(current: dict[str, Any]) -> Path:
    from pipeline.model.checkpoint import Checkpoint

    found = [p for root in ("outputs", "multirun") for p in Path(root).glob("**/last.pt")]
    for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            saved = Checkpoint.load(path)
        except PipelineError:
            continue
        if saved.finished or saved.resume is None:
            continue
        if not config_differences(saved.config, current, saved.extra.get("suggested")):
            return path
    raise PipelineError(
        f"trainer.resume=auto found no unfinished run with this config among {len(found)} "
        "last.pt files under ./outputs and ./multirun. Run from the folder the interrupted "
        "run was started in, or give its last.pt: "
        "trainer.resume=outputs/<date>/<time>-<id>/last.pt."
    )


def _from_run(run_id: str, tracking_uri: str | None) -> Path:
    from pipeline.tracking.tracker import connect_client

    client, uri = connect_client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception:
        raise PipelineError(
            f"trainer.resume={run_id}: the MLflow store at {uri} has no such run. Give the "
            "run's last.pt instead, or point tracking.uri at the store that holds the run."
        ) from None
    folder = run.data.tags.get("checkpoint_dir")
    if not folder or not (Path(folder) / "last.pt").is_file():
        raise PipelineError(
            f"trainer.resume={run_id}: the run's checkpoint folder ({folder or 'not recorded'}) "
            "holds no last.pt on this machine. Give the path of its last.pt instead."
        )
    return Path(folder) / "last.pt"


def load_for_resume(
    value: str, current: dict[str, Any], tracking_uri: str | None
) -> tuple[Path, Any]:
    """The checkpoint to resume from (a ``Checkpoint``), checked against ``current``."""
    from pipeline.model.checkpoint import Checkpoint

    path = find_checkpoint(value, current, tracking_uri)
    saved = Checkpoint.load(path)
    if saved.resume is None:
        raise PipelineError(
            f"{path} has no resume state (a best.pt, or a checkpoint of an older version): "
            "resume from the last.pt of the run."
        )
    differences = config_differences(saved.config, current, saved.extra.get("suggested"))
    if differences:
        shown = "; ".join(differences[:8]) + ("; ..." if len(differences) > 8 else "")
        raise PipelineError(
            f"{path} was written by a run with another config ({shown}). Resume with the "
            "config it was made with (the same command line), or start a new run."
        )
    wanted = int(current.get("trainer", {}).get("max_epochs", 0))
    if saved.finished and wanted <= saved.epoch:
        raise PipelineError(
            f"{path} is from a run that already finished (epoch {saved.epoch}). To "
            "train it longer, raise trainer.max_epochs; otherwise there is nothing to resume."
        )
    check_newest(path, saved, path.parent / "last.pt")
    tracking = current.get("tracking") or {}
    if tracking.get("name") == "mlflow" and saved.mlflow_run_id:
        check_run(path, saved, tracking_uri, extending=saved.finished and wanted > saved.epoch)
    return path, saved


def _position(saved: Any) -> tuple[int, int]:
    """Where training stood in ``saved``: (epoch to run, steps of it done)."""
    point = saved.resume or {}
    return int(point.get("epoch", 0)), int(point.get("step", 0))


def check_newest(path: Path, saved: Any, last: Path) -> None:
    """Refuse ``path`` when ``last`` (the run's ``last.pt``) is further on."""
    from pipeline.model.checkpoint import Checkpoint

    if not last.is_file() or last.resolve() == path.resolve():
        return
    try:
        newest = Checkpoint.load(last)
    except PipelineError:
        return  # unreadable: nothing to protect, and path may be the way back
    if newest.mlflow_run_id != saved.mlflow_run_id or _position(newest) <= _position(saved):
        return
    raise PipelineError(
        f"{path} is epoch {saved.epoch} of its run, but the run went on: {last} is at epoch "
        f"{newest.epoch}. Resuming from {path} would rewind training, overwrite {last} and "
        f"log epochs twice. Go on from the newest checkpoint: trainer.resume={last}. To use "
        f"the model in {path}, score or apply it: python -m pipeline evaluate model={path} "
        "data=... (or predict model=...); a new run cannot start from its weights yet."
    )


def check_run(path: Path, saved: Any, tracking_uri: str | None, extending: bool) -> None:
    """Refuse to reopen the FINISHED MLflow run of ``saved`` (unless it is trained longer),
    and a checkpoint behind the ``last.pt`` in the folder the run records."""
    from pipeline.tracking.tracker import connect_client

    client, _ = connect_client(tracking_uri)
    try:
        run = client.get_run(saved.mlflow_run_id)
    except Exception:
        return  # not in this store: the resumed run records a new one
    folder = run.data.tags.get("checkpoint_dir")
    if folder:
        check_newest(path, saved, Path(folder) / "last.pt")
    if run.info.status != "FINISHED" or extending:
        return
    raise PipelineError(
        f"{path} belongs to MLflow run {saved.mlflow_run_id}, which has FINISHED; resuming "
        "from it would reopen that run and log its epochs a second time. Start a new run "
        "(the same command without trainer.resume), or train the run longer from its final "
        "last.pt with a higher trainer.max_epochs. To use the model in the checkpoint: "
        f"python -m pipeline evaluate model={path} data=... (or predict model=...)."
    )


def find_resume(cfg: Any, trainer: Any, tracking_uri: str | None) -> Any:
    """The checked ``last.pt`` that ``trainer.resume`` names (None: a new run); the run then
    goes on writing beside it."""
    if not trainer.resume:
        return None
    from omegaconf import OmegaConf

    current = OmegaConf.to_container(cfg, resolve=True)
    path, resumed = load_for_resume(trainer.resume, current, tracking_uri)
    trainer.checkpoint_dir = str(path.parent)
    point = resumed.resume
    print(f"resume: {path} (epoch {point['epoch']}, step {point['step']})", flush=True)
    return resumed


def resume_command(checkpoint: str | Path) -> str:
    """The command line that goes on from ``checkpoint``: this run's overrides + resume."""
    from pipeline.config.groups import job_overrides

    kept = [o for o in job_overrides() if not o.lstrip("+~").startswith("trainer.resume=")]
    words = ["python", "-m", "pipeline", *kept, f"trainer.resume={checkpoint}"]
    return " ".join(shlex.quote(w) for w in words)
