"""MLflow logging overhead per epoch, as a share of the default run's training epoch.

    python bench/mlflow_overhead.py [--epoch-seconds S] [--repeats 3] [--threads N] [--quick]

What the pipeline logs each epoch of a classification run is one
``MlflowTracker.log_metrics(metrics, step=epoch)`` (the loop's ``LogMetrics`` callback):
one ``log_batch`` to the store plus a line appended to the run's ``tracking.jsonl``
journal. This times exactly that call, with the metric dict a real run logged (read from
the journal of a short CLI run), against a real SQLite store (created beforehand, so its
migrations are not counted): ``--calls`` calls per repeat, median per call.

The denominator is the training epoch of the default run (``python -m pipeline
task=sentiment``: 22,500 IMDb train reviews, LSTM 128, length 400, batch 64): give it
with ``--epoch-seconds``, or it is estimated from the same short CLI run (``--samples``
train reviews, 2 epochs; 22,500 / its epoch-2 ``train/samples_per_s``). Validation is not
in the denominator, so the percentage is an upper bound.

For context only (not MLflow, not in the target), the other per-epoch work ``fit`` adds
is shown too: writing ``last.pt`` and ``best.pt`` (model + optimizer state, fsynced).
Target (the issue): MLflow logging <= 2% of the epoch.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import common

TARGET = 0.02
IMDB_TRAIN_ROWS = 22_500  # IMDb's 25,000 train reviews less the 10% held out for validation


def epoch_metrics(run) -> dict[str, float]:
    """The dict the run logged for epoch 1 (its first metrics event in tracking.jsonl)."""
    for line in (run.output_dir / "tracking.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "metrics" and record.get("step") == 1:
            return record["metrics"]
    raise RuntimeError(f"no epoch-1 metrics in {run.output_dir / 'tracking.jsonl'}")


def checkpoint_seconds(workdir: Path, repeats: int) -> float:
    """Median seconds of fit's per-epoch writes (last.pt and best.pt) for the default model."""
    import torch
    import torch.nn.functional as F

    from pipeline.config.schemas import OptimizerConfig, typed
    from pipeline.model.assembly import build_model
    from pipeline.model.checkpoint import save_atomic
    from pipeline.training.step import make_optimizer

    cfg = common.compose([])
    vocab = int(cfg.tokenizer.vocab_size)
    model = build_model(cfg, vocab, 0, 2)
    optimizer = make_optimizer(
        model.parameters(), typed(OptimizerConfig, cfg.optimizer, "optimizer"), torch.device("cpu")
    )
    ids = torch.randint(1, vocab, (4, 50))
    F.cross_entropy(model(ids, ids > 0), torch.tensor([0, 1, 0, 1])).backward()
    optimizer.step()  # the optimizer state exists, as after an epoch
    times = []
    for _ in range(repeats):
        payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        start = time.perf_counter()
        save_atomic(payload, workdir / "last.pt")
        save_atomic(payload, workdir / "best.pt")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = common.parser(__doc__, samples=2_000, quick_samples=256)
    p.add_argument("--epoch-seconds", type=float, default=None, help="the default run's epoch")
    p.add_argument("--calls", type=int, default=None, help="log_metrics calls per repeat")
    args = common.setup(p.parse_args())
    calls = args.calls or (5 if args.quick else 20)

    from pipeline.config.schemas import TrackingConfig
    from pipeline.tracking.tracker import MlflowTracker

    workdir = common.workdir(args, "mlflow")
    overrides = [
        "task=sentiment",
        f"data.max_train_samples={args.samples}",
        "data.max_eval_samples=100",
        "trainer.max_epochs=2",
    ]
    print(f"a short default run: python -m pipeline {' '.join(overrides)}", flush=True)
    run = common.run_cli(overrides, workdir, "default", args.threads)
    metrics = epoch_metrics(run)
    measured_rate = run.history["train/samples_per_s"][-1]
    epoch_s = args.epoch_seconds or IMDB_TRAIN_ROWS / measured_rate
    source = "given" if args.epoch_seconds else f"22,500 / {measured_rate:,.0f} samples/s"
    print(f"per-epoch metrics ({len(metrics)}): {', '.join(metrics)}")

    tracker = MlflowTracker(
        TrackingConfig(uri=f"sqlite:///{(workdir / 'overhead.db').resolve()}"),
        journal=workdir / "overhead" / "tracking.jsonl",
    )
    tracker.start("bench-overhead", "overhead", {"task": "sentiment"})
    tracker.log_metrics(metrics, step=0)  # warm-up: the first write to a new run
    step = 0

    def log_epoch(repeat: int) -> float:
        nonlocal step
        times = []
        for _ in range(calls):
            step += 1
            start = time.perf_counter()
            tracker.log_metrics(metrics, step=step)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    runs = common.interleaved({"log_metrics": log_epoch}, args.repeats)
    tracker.end()
    per_epoch = statistics.median(runs["log_metrics"])
    share = per_epoch / epoch_s
    checkpoints = checkpoint_seconds(workdir, max(args.repeats, 3))

    print(f"\ndefault run's training epoch: {epoch_s:,.1f}s ({source}); median of {args.repeats}")
    common.table(
        ["per epoch", "seconds", "share of epoch"],
        [
            ["MLflow log_metrics", per_epoch, f"{share:.3%}"],
            ["(not MLflow) last.pt + best.pt", checkpoints, f"{checkpoints / epoch_s:.3%}"],
        ],
    )
    common.target_line("MLflow per epoch", share, TARGET, at_most=True, percent=True)
    common.write_json(
        "mlflow_overhead",
        args,
        {
            "epoch_metrics": metrics,
            "epoch_seconds": epoch_s,
            "epoch_seconds_source": source,
            "short_run": {"overrides": overrides, "run_id": run.run_id, **run.history},
            "log_metrics_seconds": per_epoch,
            "runs": runs,
            "share": share,
            "checkpoint_seconds": checkpoints,
            "target": TARGET,
            "met": share <= TARGET,
        },
    )


if __name__ == "__main__":
    main()
