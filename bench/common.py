"""Shared helpers of the benchmarks in ``bench/``: arguments, timing, interleaved repeats,
real IMDb token ids, the seed model written by hand, the pipeline's CLI in a subprocess,
tables and JSON results with the machine they were measured on.

Every benchmark takes ``--quick`` (a small smoke run), ``--repeats`` and ``--threads``
(default: torch's own default), prints a table and writes ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
if str(REPO) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repo
    sys.path.insert(0, str(REPO))

#: The seed model (Keras' IMDb LSTM example as the issue states it: Embedding 10,000 x 128
#: -> LSTM 32 -> one output on the last state, batch 32, reviews cut to 80 tokens, Adam 1e-3)
#: as pipeline overrides. ``pooler=last`` is the LSTM's state at each row's last real token
#: (Keras' LSTM(32) output); the seed has no dropout, so dropout is off in the pipeline too.
SEED_OVERRIDES = (
    "embedding.dim=128",
    "embedding.dropout=0",
    "encoder=lstm",
    "encoder.hidden_size=32",
    "encoder.bidirectional=false",  # one way, as the seed (data=imdb suggests both ways)
    "pooler=last",
    "head.dropout=0",
    "tokenizer.vocab_size=10000",
    "data.max_length=80",
    "trainer.batch_size=32",
    "optimizer=adam",
    "optimizer.lr=1e-3",
)
SEED = 42  # conf/config.yaml's seed: the CLI and the in-process loads pick the same rows


# -- arguments, threads ----------------------------------------------------------------------


def parser(doc: str, samples: int | None = None, quick_samples: int | None = None):
    """An ArgumentParser with --quick, --repeats, --threads (and --samples if given)."""
    p = argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a small, fast smoke run")
    p.add_argument(
        "--repeats", type=int, default=None, help="interleaved repeats (default 3; 1 with --quick)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder of runs")
    if samples is not None:
        p.add_argument(
            "--samples",
            type=int,
            default=None,
            help=f"rows to use (default {samples:,}; {quick_samples:,} with --quick)",
        )
        p.set_defaults(_samples=(samples, quick_samples))
    return p


def setup(args: argparse.Namespace) -> argparse.Namespace:
    """Resolve the --quick defaults, set torch's threads and the local data folder."""
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if hasattr(args, "_samples") and args.samples is None:
        args.samples = args._samples[1] if args.quick else args._samples[0]
    data_dir()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def workdir(args: argparse.Namespace, prefix: str) -> Path:
    """A temporary folder for CLI runs and MLflow stores, removed at exit unless --keep."""
    path = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    if args.keep:
        print(f"runs are kept in {path}")
    else:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def data_dir() -> str:
    """``PIPELINE_DATA_DIR``, else ``../shared/data`` beside the checkout (set for children)."""
    value = os.environ.get("PIPELINE_DATA_DIR")
    if not value:
        default = REPO.parent / "shared" / "data"
        if not default.is_dir():
            sys.exit(f"Set PIPELINE_DATA_DIR to the folder holding imdb/ ({default} is missing).")
        value = os.environ["PIPELINE_DATA_DIR"] = str(default)
    return value


# -- timing ----------------------------------------------------------------------------------


class Timer:
    """``with Timer() as t: ...``; then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def interleaved(
    variants: dict[str, Callable[[int], float]], repeats: int
) -> dict[str, list[float]]:
    """Run A, B, C, A, B, C, ...: each callable gets the repeat index and returns a number.
    Interleaving makes drift (other jobs, heat, caches) hit every variant alike."""
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(repeats):
        for name, measure in variants.items():
            runs[name].append(measure(repeat))
            print(f"  repeat {repeat + 1}/{repeats} {name}: {runs[name][-1]:,.4g}", flush=True)
    return runs


def medians(runs: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in runs.items() if values}


# -- results ---------------------------------------------------------------------------------


def machine(threads: int | None = None) -> dict[str, Any]:
    """What the numbers were measured on (with the load average: a busy machine shows)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=5)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def write_json(name: str, args: argparse.Namespace, payload: dict[str, Any]) -> Path:
    """``bench/results/<name>.json``: the settings, the machine, then the payload."""
    import torch

    settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    result = {
        "benchmark": name,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "settings": settings,
        "machine": machine(torch.get_num_threads()),
        **payload,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return out


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print an aligned table: the first column left-aligned, the others right-aligned."""
    cells = [[number(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda row: "  ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(row, widths, strict=True))
    )
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def target_line(
    what: str, value: float, target: float, *, at_most: bool = False, percent: bool = False
) -> bool:
    """Print ``what: 1.23x (target >= 1.2x: yes)``; return whether the target is met."""
    ok = value <= target if at_most else value >= target
    if percent:
        shown, limit = f"{100 * value:.3g}%", f"{100 * target:g}%"
    else:
        shown, limit = f"{value:.2f}x", f"{target:g}x"
    print(f"{what}: {shown} (target {'<=' if at_most else '>='} {limit}: {verdict(ok)})")
    return ok


# -- real IMDb token ids, as the pipeline makes them ----------------------------------------


def compose(overrides: Sequence[str]) -> Any:
    """The config ``python -m pipeline <overrides>`` composes (plugins and core schemas loaded)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from pipeline.config.schemas import register_core_configs
    from pipeline.plugins import load_plugins

    load_plugins()
    register_core_configs()
    with initialize_config_module(config_module="conf", version_base=None):
        return hydra_compose(config_name="config", overrides=list(overrides))


@dataclass
class TokenIds:
    """A composed config's data as the pipeline's training sees it."""

    cfg: Any
    splits: dict[str, Any]  # name -> pipeline.data.batching.EncodedSplit
    texts: dict[str, list[str]]
    tokenizer: Any
    num_classes: int
    seconds: float


def imdb_token_ids(overrides: Sequence[str], splits: Sequence[str] = ("train",)) -> TokenIds:
    """Load IMDb, fit the tokenizer on train and tokenize, exactly as the runner does
    (``ClassificationTask.prepare``), for the config ``overrides`` compose."""
    from pipeline.data.batching import EncodedSplit
    from pipeline.data.labelled import load_data
    from pipeline.data.tokenize import fit_tokenizer, tokenize

    with Timer() as timer:
        cfg = compose(overrides)
        data = load_data(cfg.data, seed=int(cfg.seed))
        tokenizer = fit_tokenizer(cfg.tokenizer, data.splits["train"])
        chosen = {name: data.splits[name] for name in splits}
        tokenized = tokenize(chosen, tokenizer, int(cfg.data.max_length))
        encoded = {
            name: EncodedSplit.from_dataset(ds, tokenizer.pad_id)
            for name, ds in tokenized.splits.items()
        }
    texts = {name: list(ds["text"]) for name, ds in chosen.items()}
    print(
        f"data: IMDb {', '.join(f'{k} {len(v):,}' for k, v in encoded.items())} rows, "
        f"vocabulary {tokenizer.vocab_size:,}, max length {cfg.data.max_length} "
        f"({timer.seconds:.1f}s)",
        flush=True,
    )
    return TokenIds(cfg, encoded, texts, tokenizer, len(data.labels), timer.seconds)


def left_padded(split: Any, width: int, pad_id: int = 0) -> Any:
    """[N, width] ids padded on the left (Keras' ``pad_sequences`` default), so that an
    LSTM's final state is the state after each row's last real token."""
    import torch

    lengths = split.lengths.clamp(max=width)
    steps = torch.arange(width).unsqueeze(0)  # [1, W]
    start = (width - lengths).unsqueeze(1)  # [N, 1]
    source = (steps - start).clamp(min=0)  # column of split.ids each step reads
    pads = torch.full((len(split), width), pad_id, dtype=torch.long)
    padded = split.ids[:, :width]
    if padded.size(1) < width:
        padded = torch.nn.functional.pad(padded, (0, width - padded.size(1)))
    gathered = padded.gather(1, source.clamp(max=padded.size(1) - 1))
    return torch.where(steps >= start, gathered, pads)


# -- the seed model written by hand ----------------------------------------------------------


def seed_model(vocab_size: int, num_classes: int = 2) -> Any:
    """Embedding vocab x 128 -> nn.LSTM 32 -> Linear on the last hidden state."""
    from torch import nn

    class SeedLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, 128)
            self.lstm = nn.LSTM(128, 32, batch_first=True)
            self.out = nn.Linear(32, num_classes)

        def forward(self, ids):
            _, (h, _) = self.lstm(self.embedding(ids))
            return self.out(h[-1])

    return SeedLSTM()


def pipeline_optimizer(model: Any, cfg: Any, device: Any) -> tuple[Any, float]:
    """The optimizer and the max gradient norm the pipeline trains with under the composed
    config ``cfg`` (for the seed overrides: fused Adam 1e-3, clipping at 1.0), so that a
    hand-written loop given them differs from the pipeline in the loop alone."""
    from pipeline.training.step import make_optimizer

    return make_optimizer(model.parameters(), cfg.optimizer, device), float(cfg.trainer.grad_clip)


def hand_written_epoch(
    model: Any,
    optimizer: Any,
    ids: Any,
    labels: Any,
    batch_size: int,
    seed: int,
    autocast_dtype: Any = None,
    scaler: Any = None,
    grad_clip: float = 0.0,
) -> float:
    """One shuffled epoch over pre-built tensors (on the model's device); samples/s.
    The loss is read once, at the end (no host sync per step). ``grad_clip`` > 0: the
    gradient norm is clipped as the pipeline does on a GPU (``clip_grad_norm_``, after
    unscaling fp16 gradients)."""
    import torch
    import torch.nn.functional as F

    device = ids.device
    model.train()
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).to(device)
    loss_sum = torch.zeros((), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for first in range(0, len(ids), batch_size):
        index = order[first : first + batch_size]
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(ids[index])
        loss = F.cross_entropy(logits.float(), labels[index])
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        loss_sum += loss.detach()
    loss_sum.item()
    return len(ids) / (time.perf_counter() - start)


# -- the pipeline's own CLI, in a subprocess ------------------------------------------------


@dataclass
class CliRun:
    run_id: str
    output_dir: Path
    history: dict[str, list[float]]  # metric -> value per epoch (step order)
    seconds: float  # the whole command, start to exit


def run_cli(
    overrides: Sequence[str],
    workdir: Path,
    name: str,
    threads: int | None = None,
    metrics: Sequence[str] = ("train/samples_per_s", "train/epoch_seconds"),
    source: Path | None = None,
) -> CliRun:
    """``python -m pipeline <overrides>`` in a fresh process, tracked in MLflow (a SQLite
    store in ``workdir``); the per-epoch ``metrics`` are read back from its MLflow run.

    ``source``: another checkout of the project to run instead of this one (put first on
    PYTHONPATH, so its ``pipeline``, ``plugins`` and ``conf`` are imported), e.g. a
    ``git worktree`` of the commit before a change, to compare the two in one run."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{(workdir / 'mlflow.db').resolve()}"
    output_dir = (workdir / "outputs" / re.sub(r"[^A-Za-z0-9_.-]", "_", name)).resolve()
    command = [
        sys.executable,
        "-m",
        "pipeline",
        *overrides,
        f"tracking.uri={store}",
        f"hydra.run.dir={output_dir}",
    ]
    if threads:
        command.append(f"trainer.num_threads={threads}")
    env = {**os.environ, "PIPELINE_DATA_DIR": data_dir()}
    if source is not None:
        paths = [str(Path(source).resolve()), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    with Timer() as timer:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise RuntimeError(f"python -m pipeline failed (exit {done.returncode}): {command}")
    found = re.search(r"mlflow run\s+([0-9a-f]{32})", done.stdout)
    if not found:
        raise RuntimeError(f"no MLflow run id in the output of {command}:\n{done.stdout[-2000:]}")
    run_id = found.group(1)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    history = {
        key: [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
        for key in metrics
    }
    return CliRun(run_id, output_dir, history, timer.seconds)
