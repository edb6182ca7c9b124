"""``python -m pipeline inspect`` on a 200-word review: the whole command's wall time.

    python bench/inspect_latency.py [--model best.pt|RUN_ID] [--tracking-uri URI]
                                    [--words 200] [--repeats 6] [--source DIR] [--quick]

Without ``--model``, the default IMDb model is trained first with the real CLI
(``task=sentiment data.max_train_samples=2000 trainer.max_epochs=1``, the default
architecture) into a temporary SQLite MLflow store. The text is the first IMDb test review
(the local files) with ``--words`` words (within 5), without HTML breaks.

Variants, each a fresh ``python -m pipeline inspect model=... text=... out=...`` process,
run interleaved:

* ``checkpoint``: ``model=<best.pt>`` (nothing is logged);
* ``run``: ``model=<run id>`` with its store: the files are also logged to the run (only
  where the model has a run: the trained one, or ``--model`` given as a run id).

``--source DIR`` adds the same variants run from another checkout (put first on
``PYTHONPATH``), e.g. ``git worktree add /tmp/before <commit>`` to compare before and after.
Each repeat records the wall time, the process's CPU time (user + system, which other jobs
on the machine disturb less) and the 1-minute load average when it started. The target (the
issue): under 5 s for the checkpoint.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import common

TARGET_SECONDS = 5.0


def review(words: int) -> str:
    """The first IMDb test review with ``words`` words (within 5) and no HTML break."""
    for path in sorted(Path(common.data_dir(), "imdb").glob("test-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                text = json.loads(line)["text"]
                if abs(len(text.split()) - words) <= 5 and "<br" not in text:
                    return text
    sys.exit(f"no IMDb test review of about {words} words under {common.data_dir()}/imdb")


def train(args, workdir: Path) -> tuple[Path, str, str]:
    """The default IMDb model, one epoch on 2,000 reviews: (best.pt, run id, store)."""
    overrides = ["task=sentiment", "trainer.max_epochs=1", "data.max_eval_samples=500"]
    overrides.append(f"data.max_train_samples={300 if args.quick else 2000}")
    print(f"training a model: python -m pipeline {' '.join(overrides)}", flush=True)
    run = common.run_cli(overrides, workdir, "model", metrics=())
    return run.output_dir / "best.pt", run.run_id, f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def inspect_once(model: str, store: str, text: str, out: Path, source: str | None) -> dict:
    """One ``inspect`` process: wall and CPU seconds, and the load average at its start."""
    command = [sys.executable, "-m", "pipeline", "inspect", f"model={model}", f"text={text}"]
    command += [f"out={out}"] + ([f"tracking_uri={store}"] if store else [])
    out.parent.mkdir(parents=True, exist_ok=True)  # its working folder: not a checkout
    env = dict(os.environ)  # the checkout timed comes first (before an editable install)
    first = str(source or common.REPO)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (first, env.get("PYTHONPATH")) if p)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with common.Timer() as timer:
        done = subprocess.run(command, cwd=out.parent, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"inspect failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": timer.seconds, "cpu_seconds": cpu, "load_1min": load}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--model", default=None, help="a checkpoint (best.pt) or an MLflow run id")
    p.add_argument("--tracking-uri", default="", help="the MLflow store of a run id --model")
    p.add_argument("--words", type=int, default=200, help="words of the review (default 200)")
    p.add_argument("--source", default=None, help="another checkout to time as well")
    args = p.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 6)
    args = common.setup(args)
    workdir = common.workdir(args, "inspect")
    text = review(args.words)
    if args.model is None:
        checkpoint, run_id, store = train(args, workdir)
        models = {"checkpoint": (str(checkpoint), ""), "run": (run_id, store)}
    elif Path(args.model).exists():
        models = {"checkpoint": (args.model, "")}
    else:
        models = {"run": (args.model, args.tracking_uri)}
    sources = {"": None, **({f" ({args.source})": args.source} if args.source else {})}
    records: dict[str, list[dict]] = {}
    variants = {}
    for suffix, source in sources.items():
        for kind, (model, store) in models.items():
            name = kind + suffix

            def measure(repeat: int, name=name, model=model, store=store, source=source):
                out = workdir / "out" / f"{name.replace(' ', '_').replace('/', '_')}-{repeat}"
                record = inspect_once(model, store, text, out, source)
                records.setdefault(name, []).append(record)
                return record["seconds"]

            variants[name] = measure
    print(f"inspect on a {len(text.split())}-word review, {args.repeats} repeats", flush=True)
    runs = common.interleaved(variants, args.repeats)
    report(args, text, runs, records)


def report(args, text: str, runs: dict[str, list[float]], records: dict[str, list[dict]]):
    """The table, the target line and the JSON."""
    rows = []
    for name, seconds in runs.items():
        cpu = [r["cpu_seconds"] for r in records[name]]
        loads = [r["load_1min"] for r in records[name]]
        rows.append([name, statistics.median(seconds), min(seconds), max(seconds),
                     statistics.median(cpu), f"{min(loads):.2f}-{max(loads):.2f}"])  # fmt: skip
    common.table(["variant", "median s", "min s", "max s", "median CPU s", "load 1 min"], rows)
    worst = max(runs.get("checkpoint", runs.get("run", [float("nan")])))
    met = worst < TARGET_SECONDS
    print(f"worst run: {worst:.2f} s (target < {TARGET_SECONDS:g} s: {common.verdict(met)})")
    common.write_json(
        "inspect_latency",
        args,
        {
            "words": len(text.split()),
            "seconds": common.medians(runs),
            "runs": records,
            "target_seconds": TARGET_SECONDS,
            "met": met,
        },
    )


if __name__ == "__main__":
    main()
