"""``python -m pipeline runs``: the runs of a store as a leaderboard, or two runs side by side.

    python -m pipeline runs [experiment] [--sort val/accuracy] [--uri URI]
    python -m pipeline runs [experiment] --compare RUN1 RUN2

Reads any MLflow store (``./mlflow.db`` by default, ``MLFLOW_TRACKING_URI`` or ``--uri``
otherwise, a server too) and never writes to it. Each run is read by its best epoch
(``best/val/*``, logged by every run) and its ``test/*``; a sweep's parent run is left out
(its values are its best child's, which is listed). ``--compare`` takes run ids or run names.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, PipelineError, did_you_mean
from pipeline.reporting.leaderboard import (
    align,
    clock,
    markdown_table,
    mode_for,
    ranked,
    row_of,
    text_table,
    varying_params,
)

PARENT_TAG = "pipeline.run.sweep"  # as pipeline.run.sweep tags a sweep's parent
DEFAULT_SORTS = ("best/val/accuracy", "best/val/perplexity")
MAX_RUNS = 10000


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command's arguments (``--help`` prints the usage and exits)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline runs",
        description="List an MLflow store's runs best first (best epoch's validation metric, "
        "test metrics, what differs, time), or compare two runs side by side.",
    )
    parser.add_argument("experiment", nargs="?", help="experiment name (default: every one)")
    parser.add_argument(
        "--sort",
        metavar="METRIC",
        help="rank by this metric: val/accuracy means best/val/accuracy (the best epoch's); "
        "losses, perplexities and errors rank low first (default: best/val/accuracy, else "
        "best/val/perplexity)",
    )
    parser.add_argument("--compare", nargs=2, metavar=("RUN1", "RUN2"), help="run ids or names")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"
    )
    return parser.parse_args(argv)


def open_store(uri: str | None) -> tuple[Any, str]:
    """A read-only look at the store: a missing SQLite file or a silent server is an error
    (never an empty store created on the way)."""
    from mlflow import MlflowClient

    from pipeline.tracking.store import server_answers, sqlite_path

    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        raise PipelineError(
            f"No MLflow store at {uri}: {Path(database).resolve()} does not exist. Run this "
            "in the folder you trained in, or give the store: --uri sqlite:///path/to/mlflow.db "
            "or --uri http://host:port."
        )
    if uri.startswith(("http://", "https://")) and not server_answers(uri, 5.0):
        raise PipelineError(
            f"The MLflow server at {uri} does not answer (GET {uri}/health failed). Start it "
            "or fix --uri."
        )
    return MlflowClient(tracking_uri=uri), uri


def experiments(client: Any, name: str | None, uri: str) -> list[Any]:
    """The experiment called ``name``, or every experiment with runs when no name is given."""
    found = client.search_experiments()
    if name is None:
        return [e for e in found if client.search_runs([e.experiment_id], max_results=1)]
    for experiment in found:
        if experiment.name == name:
            return [experiment]
    raise PipelineError(
        f"No experiment '{name}' in the MLflow store at {uri}. "
        f"{did_you_mean(name, [e.name for e in found])} Experiments are named after the task "
        "(sentiment, topic, lm) unless tracking.experiment set another name."
    )


def runs_of(client: Any, experiment_id: str) -> list[Any]:
    """An experiment's runs, newest first, less sweep parents."""
    runs = client.search_runs(
        [experiment_id], max_results=MAX_RUNS, order_by=["attributes.start_time DESC"]
    )
    return [r for r in runs if r.data.tags.get(PARENT_TAG) != "parent"]


def sort_key(wanted: str | None, runs: list[Any], strict: bool = True) -> str | None:
    """The metric to rank by: ``val/x`` is the best epoch's ``best/val/x``; ``strict``: one
    that no run logged is an error (not when listing every experiment)."""
    known = sorted(set().union(*(r.data.metrics for r in runs))) if runs else []
    if wanted is None:
        return next((k for k in DEFAULT_SORTS if k in known), None)
    key = f"best/{wanted}" if wanted.startswith("val/") else wanted
    if strict and key not in known and runs:
        shown = [k for k in known if k.startswith(("best/", "test/"))]
        raise ConfigError(f"No run logged the metric {key} to sort by. {did_you_mean(key, shown)}")
    return key


def leaderboard(
    runs: list[Any], sort: str | None, markdown: bool = False, strict: bool = True
) -> str:
    """The runs best first by ``sort``, what differs between them, their test metrics."""
    key = sort_key(sort, runs, strict)
    default = sort_key(None, runs)  # shown beside another sort key
    also = [default] if default and default != key else []
    params = [dict(r.data.params) for r in runs]
    varied = varying_params(params)
    rows = []
    for run, values in zip(runs, params, strict=True):
        score = run.data.metrics.get(key) if key else None
        rows.append(row_of(run, score, {k: values.get(k, "-") for k in varied}, also))
    mode = mode_for(key or "")
    table = markdown_table if markdown else text_table
    return table(ranked(rows, mode), key or "(no best/val/* metric)", mode)


def find_run(client: Any, ref: str, experiment_ids: list[str], uri: str) -> Any:
    """A run by id, or by its (unique) name within ``experiment_ids``."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(ref)
    except MlflowException:
        pass
    name = ref.replace("'", "")
    found = client.search_runs(experiment_ids, filter_string=f"attributes.run_name = '{name}'")
    if len(found) == 1:
        return found[0]
    if not found:
        raise PipelineError(
            f"No run '{ref}' in the MLflow store at {uri}: give a run id or a run name as "
            "`python -m pipeline runs` lists them (add the experiment to look in one only)."
        )
    ids = ", ".join(r.info.run_id for r in found)
    raise PipelineError(f"{len(found)} runs are named '{ref}' ({ids}): give one run id.")


def compared_values(run: Any) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(about the run, its params, its results) as text, for one column of ``--compare``."""
    from pipeline.reporting.leaderboard import duration, number

    about = {"run id": run.info.run_id, "status": run.info.status}
    about["time"] = clock(duration(run.info))
    results = {
        k: number(v) if k != "best_epoch" else str(int(v))
        for k, v in run.data.metrics.items()
        if k.startswith(("best/", "test/")) or k == "best_epoch"
    }
    return about, dict(run.data.params), results


def side_by_side(first: Any, second: Any) -> str:
    """Two runs' params and results in two columns; ``*`` marks what differs (listed first)."""
    a, b = compared_values(first), compared_values(second)
    names = ["", first.info.run_name or "run 1", second.info.run_name or "run 2"]
    lines: list[list[str]] = [["", *names]]
    for title, left, right in zip(("run", "params", "results"), a, b, strict=True):
        keys = sorted(set(left) | set(right))
        differs = {k: left.get(k) != right.get(k) for k in keys}
        keys.sort(key=lambda k: not differs[k])
        lines.append(["", f"{title}:", "", ""])
        for k in keys:
            mark = "*" if differs[k] and title != "run" else ""
            lines.append([mark, f"  {k}", left.get(k, "-"), right.get(k, "-")])
    return "\n".join([*align(lines), "* differs"])


def main(argv: list[str]) -> None:
    """Print the leaderboard of each experiment asked for, or the comparison of two runs."""
    args = parse_args(argv)
    client, uri = open_store(args.uri)
    chosen = experiments(client, args.experiment, uri)
    if args.compare:
        ids = [e.experiment_id for e in chosen]
        first, second = (find_run(client, ref, ids, uri) for ref in args.compare)
        print(side_by_side(first, second))
        return
    if not chosen:
        print(f"No runs in the MLflow store at {uri}.")
        return
    for experiment in chosen:
        runs = runs_of(client, experiment.experiment_id)
        print(f"Experiment {experiment.name} ({len(runs)} runs, {uri}):")
        print(leaderboard(runs, args.sort, args.markdown, args.experiment is not None) + "\n")
