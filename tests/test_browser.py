"""The MLflow UI in a real browser: a two-job Hydra sweep, served by a real `mlflow server`,
looked at through Debian's Chromium driven by Playwright.

Two shapes of sweep are accepted: the jobs as two top-level runs, or one parent run (named
``sweep...``, tag ``pipeline.run.sweep=parent``) with the jobs nested under it
(``mlflow.parentRunId``). In the second shape the parent row is expanded so that the children
show. Checked against what the sweep printed: each child's best ``val/accuracy`` in the runs
list's ``best/val/accuracy`` column, the compare page's default parallel coordinates axes
(the swept keys), ``test/accuracy`` on each logged model's page. Skipped only where the
``playwright`` package or ``/usr/bin/chromium`` is missing; set ``PIPELINE_TEST_SCREENSHOTS``
to keep the screenshots (runs list, compare page, model page) somewhere of your choosing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import (
    answers,
    free_port,
    launch_mlflow_server,
    stop_process,
    store_has_a_run,
    tail,
)
from tests.terminal_output import terminal_leaderboard, terminal_summaries

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the `playwright` package is not installed (pip install -e '.[dev]')",
)
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)",
        allow_module_level=True,
    )

from tests import browser_ui as web  # noqa: E402  (Playwright is there)

SWEEP = [
    "-m",
    "task=sentiment",
    "data=sst2",
    "encoder=lstm,gru",
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
    "data.max_train_samples=1000",
    "data.max_eval_samples=200",
    "trainer.max_epochs=2",  # so that a best epoch can differ from the last
    "encoder.hidden_size=16",
    "embedding.dim=16",
    "tokenizer.vocab_size=2000",
    "trainer.progress=log",
]
ENCODERS = {"lstm", "gru"}
METRIC = "val/accuracy"
BEST = f"best/{METRIC}"  # the best epoch's, logged once: the runs list shows it as it is
SWEPT = {arg.split("=")[0] for arg in SWEEP if "," in arg}
DERIVED = {"n_params"}  # a param that differs because the swept encoder does
PARENT_TAG = "pipeline.run.sweep"


@dataclass
class Sweep:
    cwd: Path
    experiment_id: str
    parent: object | None  # mlflow Run, or None where the jobs are top-level runs
    children: list  # mlflow Runs, one per job
    models: dict  # run id -> the LoggedModel it logged
    log: str  # what the sweep printed (stdout and stderr)


def recorded_sweep(db: Path, cwd: Path, sweep_log: Path) -> Sweep:
    """The sweep as the store holds it: its parent (if any), its two children, their models."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("sentiment")
    assert experiment is not None, f"no experiment 'sentiment':\n{tail(sweep_log)}"
    runs = client.search_runs([experiment.experiment_id])
    parents = [
        r
        for r in runs
        if r.data.tags.get(PARENT_TAG) == "parent" or r.info.run_name.startswith("sweep")
    ]
    assert len(parents) <= 1, [r.info.run_name for r in parents]
    parent = parents[0] if parents else None
    children = [r for r in runs if parent is None or r.info.run_id != parent.info.run_id]
    assert {r.data.tags.get("encoder") for r in children} == ENCODERS, [
        (r.info.run_name, r.data.tags.get("encoder")) for r in children
    ]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    if parent is not None:
        for child in children:
            assert child.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    models = {m.source_run_id: m for m in client.search_logged_models([experiment.experiment_id])}
    assert {c.info.run_id for c in children} <= set(models), "a child logged no model"
    log = sweep_log.read_text(errors="replace")
    return Sweep(cwd, experiment.experiment_id, parent, children, models, log)


@pytest.fixture(scope="module")
def ui(tmp_path_factory, data_dir, hf_cache) -> Iterator[tuple[Sweep, str]]:
    """The sweep in ``<tmp>/mlflow.db`` and the base URL of a `mlflow server` on that store.

    The server starts as soon as the sweep has recorded its first run, so that its start-up
    overlaps the training.
    """
    cwd = tmp_path_factory.mktemp("browser")
    db = cwd / "mlflow.db"
    env = {
        **os.environ,
        "PIPELINE_DATA_DIR": str(data_dir),
        "HF_DATASETS_CACHE": str(hf_cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    sweep_log, server_log = cwd / "sweep.log", cwd / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = None
    with open(sweep_log, "w") as sweep_out, open(server_log, "w") as server_out:
        sweep = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *SWEEP],
            cwd=cwd,
            env=env,
            stdout=sweep_out,
            stderr=subprocess.STDOUT,
        )
        try:
            import mlflow.tracking  # noqa: F401  imported while the sweep starts

            deadline = time.monotonic() + 300
            while sweep.poll() is None and not store_has_a_run(db):
                if time.monotonic() > deadline:
                    pytest.fail(f"the sweep recorded no run in 300 s:\n{tail(sweep_log)}")
                time.sleep(0.5)
            if store_has_a_run(db):
                server = launch_mlflow_server(
                    db, port, cwd, artifacts=cwd / "mlruns", env=env, log=server_out
                )
            try:
                code = sweep.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                pytest.fail(f"the sweep did not finish in 300 s:\n{tail(sweep_log)}")
            assert code == 0, f"the sweep failed ({code}):\n{tail(sweep_log)}"
            if server is None:
                server = launch_mlflow_server(
                    db, port, cwd, artifacts=cwd / "mlruns", env=env, log=server_out
                )
        except BaseException:
            stop_process(sweep)
            if server is not None:
                stop_process(server)
            raise
    try:
        deadline = time.monotonic() + 90
        while not answers(f"{base}/health"):
            assert server.poll() is None, f"mlflow server exited:\n{tail(server_log)}"
            assert time.monotonic() < deadline, (
                f"mlflow server did not answer /health in 90 s:\n{tail(server_log)}"
            )
            time.sleep(0.5)

        yield recorded_sweep(db, cwd, sweep_log), base
    finally:
        stop_process(sweep)
        stop_process(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(web.TIMEOUT_MS)
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    chosen = os.environ.get("PIPELINE_TEST_SCREENSHOTS")
    if chosen:
        path = Path(chosen).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


def test_format_metric_matches_the_ui() -> None:
    assert web.format_metric(0.535) == "0.535"
    assert web.format_metric(0.54449) == "0.544"
    assert web.format_metric(1.0) == "1"
    assert web.format_metric(404.6812) == "404.7"
    assert web.format_metric(12.345) == "12.35"
    assert web.format_metric(0.000123456) == "1.235e-4"


def test_runs_list_shows_the_best_val_accuracy_the_terminal_printed(
    ui, page, screenshot_dir, capsys
) -> None:
    """Each child's ``best/val/accuracy`` column in the runs list (added as a user adds it)
    shows what the child's summary and the leaderboard printed: the best epoch's."""
    sweep, base = ui
    printed = terminal_summaries(sweep.log)
    board = terminal_leaderboard(sweep.log, BEST)
    web.open_runs_list(page, base, sweep)
    web.show_metric_column(page, BEST)
    for child in sweep.children:
        name, stored = child.info.run_name, child.data.metrics[BEST]
        terminal = printed[name][f"best {METRIC}"]  # "best epoch 1 of 2 (val/accuracy 0.5450)"
        assert board[name] == terminal == printed[name][METRIC], (name, board, printed[name])
        assert abs(stored - terminal) <= 5e-5, f"{name}: stored {stored}, printed {terminal}"
        shown = web.runs_list_cell(page, child.info.run_id, BEST)
        assert shown == web.format_metric(stored), f"{name}: the list shows {shown}, not {stored}"
        assert abs(float(shown) - terminal) <= 5e-4 + 5e-5, f"{name}: {shown} vs {terminal}"
    web.fit_viewport(page)
    web.screenshot(page, screenshot_dir / "mlflow-runs.png", capsys)


def test_compare_view_plots_the_swept_keys_and_shows_the_metric(
    ui, page, screenshot_dir, capsys
) -> None:
    sweep, base = ui
    web.open_runs_list(page, base, sweep)
    children = web.select_and_compare(page, sweep)
    for child in children:
        web.wait_for_text(page, child.info.run_name)
    axes = web.plot_axes(page)
    with capsys.disabled():
        print(f"\nparallel coordinates axes: {axes}")
    web.check_plot_axes(axes, children, SWEPT, DERIVED)
    # The Metrics table: its BEST line holds each run's value, left to right in URL order.
    label = web.metric_label(page, BEST)
    expected = [web.format_metric(child.data.metrics[BEST]) for child in children]
    line = web.metric_line(label)
    assert line == expected, f"the {BEST} line shows {line}, expected {expected}"
    web.close_assistant(page)
    diff_only = page.locator('button[aria-label="Parameters - Show diff only"]')
    if diff_only.count():  # keep the screenshot to the parameters that differ
        diff_only.first.click()
    web.fit_viewport(page, bottom=".ReactVirtualized__Grid")  # down to the Metrics table
    seen = web.scroll_to_line(page, label)
    assert seen["inside"] and all(abs(dy) <= 3 for dy in seen["offsets"]), (
        f"{BEST} and its values are not on one visible line: {seen}"
    )
    web.screenshot(page, screenshot_dir / "mlflow-compare.png", capsys)


def test_logged_model_page_shows_test_accuracy(ui, page, screenshot_dir, capsys) -> None:
    """Each child's logged model (named after its run) lists ``test/accuracy``, the value
    the child's summary printed."""
    sweep, base = ui
    printed = terminal_summaries(sweep.log)
    for n, child in enumerate(sweep.children):
        model, name = sweep.models[child.info.run_id], child.info.run_name
        assert model.name == name
        page.goto(f"{base}/#/experiments/{sweep.experiment_id}/models/{model.model_id}")
        web.wait_for_text(page, model.model_id)
        cells = web.model_metric_row(page, "test/accuracy")
        terminal = printed[name]["test/accuracy"]
        assert abs(float(cells[-1]) - terminal) <= 5e-5, f"{name}: {cells} vs {terminal}"
        if n == 0:
            web.close_assistant(page)
            web.fit_viewport(page)
            web.screenshot(page, screenshot_dir / "mlflow-model.png", capsys)
