"""Preprocessing IMDb (train + test, 50,000 reviews) the first time vs the second, cached, time.

    python bench/preprocessing.py [--repeats 3] [--threads N] [--quick]

Each repeat makes a fresh, empty Hugging Face datasets cache (``HF_DATASETS_CACHE`` in a
temporary folder) and runs the pipeline's preprocessing twice, each time in a fresh Python
process (so no in-process cache can help; only files on disk can):

    load_data(data=imdb)  ->  fit_tokenizer(tokenizer=word, train)  ->  tokenize(every split, 400)

exactly as ``pipeline.run.runner`` calls them, with the config ``python -m pipeline`` composes.
The first run reads the gzipped JSON Lines, fits the tokenizer and tokenizes every row;
the second should find the converted data and the tokenized splits in the cache.

Prints seconds per stage for both runs (medians), ``rows tokenized`` (0 = every split came
from the cache), and second / first. The headline is the whole preprocessing
(load + fit + tokenize); the process's start and imports are shown apart.
Target (the issue): second <= 10% of first.
With ``--quick``: train subsampled to 2,000 rows and test to 1,000 (the files are still
read whole the first time).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

TARGET = 0.10
KEYS = ("load_s", "fit_s", "tokenize_s", "total_s", "import_s", "process_s")


def child(overrides: list[str]) -> None:
    """One preprocessing run; prints its timings as one JSON line."""
    started = time.perf_counter()
    from pipeline.data.labelled import load_data
    from pipeline.data.tokenize import fit_tokenizer, tokenize

    cfg = common.compose(overrides)
    imported = time.perf_counter()
    data = load_data(cfg.data, seed=int(cfg.seed))
    loaded = time.perf_counter()
    tokenizer = fit_tokenizer(cfg.tokenizer, data.splits["train"])
    fitted = time.perf_counter()
    tokenized = tokenize(data.splits, tokenizer, int(cfg.data.max_length))
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - started,
                "load_s": loaded - imported,
                "fit_s": fitted - loaded,
                "tokenize_s": done - fitted,
                "total_s": done - imported,
                "rows": sum(len(ds) for ds in data.splits.values()),
                "rows_tokenized": tokenized.rows_tokenized,
                "from_cache": tokenized.from_cache,
            }
        )
    )


def run_child(cache: Path, overrides: list[str], threads: int | None) -> dict:
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "PIPELINE_DATA_DIR": common.data_dir()}
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)  # the tokenizers library's thread pool
    command = [sys.executable, __file__, "--child", *overrides]
    with common.Timer() as timer:
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise RuntimeError(f"preprocessing child failed (exit {done.returncode})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = timer.seconds
    return result


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        common.data_dir()
        child(sys.argv[2:])
        return
    args = common.setup(common.parser(__doc__).parse_args())
    overrides = ["data=imdb", "tokenizer=word"]
    if args.quick:
        overrides += ["data.max_train_samples=2000", "data.max_eval_samples=1000"]
    results: dict[str, list[dict]] = {"first": [], "second": []}
    for repeat in range(args.repeats):  # each repeat: first then second, on a fresh cache
        cache = Path(tempfile.mkdtemp(prefix="bench-hf-cache-"))
        try:
            for which in ("first", "second"):
                results[which].append(run_child(cache, overrides, args.threads))
                r = results[which][-1]
                print(
                    f"  repeat {repeat + 1}/{args.repeats} {which}: {r['total_s']:.2f}s "
                    f"({r['rows_tokenized']:,} rows tokenized)",
                    flush=True,
                )
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    median = {
        which: {k: statistics.median(r[k] for r in runs) for k in KEYS}
        for which, runs in results.items()
    }
    first, second = median["first"], median["second"]
    rows = results["first"][0]["rows"]
    print(f"\nIMDb, {rows:,} reviews (train + validation + test), median of {args.repeats}")
    names = {
        "load_s": "load_data",
        "fit_s": "fit_tokenizer",
        "tokenize_s": "tokenize",
        "total_s": "preprocessing",
        "import_s": "imports",
        "process_s": "whole process",
    }
    common.table(
        ["stage", "first s", "second s", "second / first"],
        [[names[k], first[k], second[k], f"{second[k] / first[k]:.1%}"] for k in names],
    )
    tokenized = [r["rows_tokenized"] for r in results["second"]]
    print(f"rows tokenized in the second run: {tokenized} (0 = every split from the cache)")
    ratio = second["total_s"] / first["total_s"]
    common.target_line("second / first", ratio, TARGET, at_most=True, percent=True)
    common.write_json(
        "preprocessing",
        args,
        {
            "overrides": overrides,
            "rows": rows,
            "seconds": median,
            "runs": results,
            "ratio": ratio,
            "target": TARGET,
            "met": ratio <= TARGET,
            "second_rows_tokenized": tokenized,
        },
    )


if __name__ == "__main__":
    main()
