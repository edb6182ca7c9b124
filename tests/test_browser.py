"""The MLflow UI in a real browser: a two-job Hydra sweep, served by a real `mlflow server`,
looked at through Debian's Chromium driven by Playwright.

Two shapes of sweep are accepted: the jobs as two top-level runs, or one parent run (named
``sweep...``, tag ``pipeline.run.sweep=parent``) with the jobs nested under it
(``mlflow.parentRunId``). In the second shape the parent row is expanded so that the children
show. Skipped only where the ``playwright`` package or ``/usr/bin/chromium`` is missing; set
``PIPELINE_TEST_SCREENSHOTS`` to keep the screenshots somewhere of your choosing.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import answers, free_port, launch_mlflow_server

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

SWEEP = [
    "-m",
    "task=sentiment",
    "data=sst2",
    "encoder=lstm,gru",
    "data.max_train_samples=1000",
    "data.max_eval_samples=200",
    "trainer.max_epochs=1",
    "encoder.hidden_size=16",
    "embedding.dim=16",
    "tokenizer.vocab_size=2000",
    "trainer.progress=log",
    "tracking.log_model=false",  # ~4 s a job, and nothing here looks at the model
]
ENCODERS = {"lstm", "gru"}
METRIC = "val/accuracy"
TIMEOUT_MS = 60_000
PARENT_TAG = "pipeline.run.sweep"


@dataclass
class Sweep:
    cwd: Path
    experiment_id: str
    parent: object | None  # mlflow Run, or None where the jobs are top-level runs
    children: list  # mlflow Runs, one per job


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM to `mlflow server` stops its workers too
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def store_has_a_run(db: Path) -> bool:
    """True once a run is recorded: the store's migrations are then done, so a server can
    open it without migrating it a second time."""
    if not db.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return con.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
    except sqlite3.Error:
        return False


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
            from mlflow.tracking import MlflowClient  # imported while the sweep starts

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
            stop(sweep)
            if server is not None:
                stop(server)
            raise
    try:
        deadline = time.monotonic() + 90
        while not answers(f"{base}/health"):
            assert server.poll() is None, f"mlflow server exited:\n{tail(server_log)}"
            assert time.monotonic() < deadline, (
                f"mlflow server did not answer /health in 90 s:\n{tail(server_log)}"
            )
            time.sleep(0.5)

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
        yield Sweep(cwd, experiment.experiment_id, parent, children), base
    finally:
        stop(sweep)
        stop(server)


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
        page.set_default_timeout(TIMEOUT_MS)
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


def visible_text(page, limit: int = 2500) -> str:
    try:
        return f"{page.url}\n{page.inner_text('body', timeout=5000)[:limit]}"
    except Exception as error:  # the page itself may be what broke
        return f"{page.url}\n(no page text: {error})"


def wait_for_text(page, text: str, timeout: int = TIMEOUT_MS):
    """The first visible element whose text is exactly ``text``; on timeout, say what the
    page shows instead."""
    found = page.get_by_text(text, exact=True).filter(visible=True).first
    try:
        found.wait_for(state="visible", timeout=timeout)
    except sync_api.TimeoutError:
        pytest.fail(
            f"{text!r} did not appear within {timeout / 1000:g} s; the page shows:\n"
            f"{visible_text(page)}",
            pytrace=False,
        )
    return found


def close_assistant(page) -> None:
    """The UI opens an "MLflow Assistant" panel beside every page; close it for the
    screenshots (where a future UI has no such panel, nothing happens)."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count() and close.first.is_visible():
        close.first.click()


def fit_viewport(page, bottom: str | None = None) -> None:
    """Grow the viewport so that one screenshot shows the page from its top down to the
    element ``bottom`` (a CSS selector), or all of it: the UI scrolls inside <main>, so a
    full-page screenshot alone shows only the first screen."""
    page.evaluate("() => document.querySelectorAll('main').forEach(m => { m.scrollTop = 0; })")
    if bottom is not None and page.locator(bottom).count():
        height = page.locator(bottom).last.evaluate("e => e.getBoundingClientRect().bottom + 60")
    else:
        height = page.evaluate(
            """() => Math.max(document.documentElement.scrollHeight,
                 ...Array.from(document.querySelectorAll('main'), m =>
                     m.scrollHeight + m.getBoundingClientRect().top))"""
        )
    page.set_viewport_size({"width": 1600, "height": int(min(max(height, 1000), 8000))})
    page.wait_for_timeout(800)  # let the grids re-render at the new size


def screenshot(page, path: Path, capsys) -> None:
    page.screenshot(path=str(path), full_page=True)
    with capsys.disabled():
        print(f"\nscreenshot: {path}")


def format_metric(value: float) -> str:
    """MLflow UI's ``Utils.formatMetric``: how the compare view prints a metric value."""

    def js_round(x: float, digits: int) -> str:
        scaled = math.floor(x * 10**digits + 0.5) / 10**digits  # JavaScript's Math.round
        return str(int(scaled)) if scaled == int(scaled) else repr(scaled)

    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    if abs(value) < 10:
        return js_round(value, 3)
    if abs(value) < 100:
        return js_round(value, 2)
    return js_round(value, 1)


def test_format_metric_matches_the_ui() -> None:
    assert format_metric(0.535) == "0.535"
    assert format_metric(0.54449) == "0.544"
    assert format_metric(1.0) == "1"
    assert format_metric(404.6812) == "404.7"
    assert format_metric(12.345) == "12.35"
    assert format_metric(0.000123456) == "1.235e-4"


def test_runs_view_shows_the_sweep(ui, page, screenshot_dir, capsys) -> None:
    sweep, base = ui
    page.goto(f"{base}/#/experiments/{sweep.experiment_id}/runs", wait_until="domcontentloaded")
    names = [child.info.run_name for child in sweep.children]
    if sweep.parent is not None:
        wait_for_text(page, sweep.parent.info.run_name)
        page.wait_for_timeout(500)
        shown = page.get_by_text(names[0], exact=True).filter(visible=True)
        if not shown.count():  # collapsed: open the parent's expander (a button by its name)
            row = page.locator(f'[role="row"][row-id="{sweep.parent.info.run_id}"]')
            expander = row.locator('[col-id*="Run Name"] button').first
            try:
                expander.click(timeout=10_000)
            except sync_api.TimeoutError:
                pytest.fail(
                    "no expander on the parent run's row; the page shows:\n" + visible_text(page),
                    pytrace=False,
                )
    for name in names:
        wait_for_text(page, name)
    if sweep.parent is not None:
        assert page.get_by_text(sweep.parent.info.run_name, exact=True).first.is_visible()
    close_assistant(page)
    fit_viewport(page)
    screenshot(page, screenshot_dir / "mlflow-runs.png", capsys)


def test_compare_view_shows_both_runs_and_the_metric(ui, page, screenshot_dir, capsys) -> None:
    sweep, base = ui
    ids = [child.info.run_id for child in sweep.children]
    query = urllib.parse.urlencode(
        {"runs": json.dumps(ids), "experiments": json.dumps([sweep.experiment_id])},
        quote_via=urllib.parse.quote,
    )
    page.goto(f"{base}/#/compare-runs?{query}", wait_until="domcontentloaded")
    wait_for_text(page, f"Comparing {len(ids)} Runs from 1 Experiment")
    for child in sweep.children:
        wait_for_text(page, child.info.run_name)
    # The Metrics table is two virtualized grids side by side (names | values), each 300 px
    # high and scrolling inside itself. The value cells on the metric's line share its `top`;
    # left to right they are the runs in the order asked for.
    label = page.get_by_role("link", name=METRIC, exact=True).first
    try:
        label.wait_for(state="attached", timeout=TIMEOUT_MS)
    except sync_api.TimeoutError:
        pytest.fail(
            f"no {METRIC!r} in the metrics table; the page shows:\n{visible_text(page, 6000)}",
            pytrace=False,
        )
    line = label.evaluate(
        """label => {
            const cell = label.closest('div[style*="top"]');
            const own = cell.closest('.ReactVirtualized__Grid');
            return Array.from(document.querySelectorAll('.ReactVirtualized__Grid'))
                .filter(grid => grid !== own)
                .flatMap(grid => Array.from(grid.querySelectorAll('div[style*="top"]')))
                .filter(d => d.style.top === cell.style.top)
                .sort((a, b) => parseFloat(a.style.left) - parseFloat(b.style.left))
                .map(d => d.innerText.trim());
        }"""
    )
    expected = [format_metric(child.data.metrics[METRIC]) for child in sweep.children]
    assert line == expected, (
        f"the {METRIC} line shows {line}, expected {expected} for "
        f"{[child.info.run_name for child in sweep.children]}"
    )

    close_assistant(page)
    diff_only = page.locator('button[aria-label="Parameters - Show diff only"]')
    if diff_only.count():  # keep the screenshot to the parameters that differ
        diff_only.first.click()
    fit_viewport(page, bottom=".ReactVirtualized__Grid")  # down to the Metrics table
    # Scroll the values grid (the one a user scrolls) so the metric's line shows. The names
    # grid follows it one scroll event late (it copies the values grid's previous scrollTop),
    # hence the last two steps.
    target = label.evaluate(
        """label => {
            const own = label.closest('.ReactVirtualized__Grid');
            const grid = Array.from(document.querySelectorAll('.ReactVirtualized__Grid'))
                .find(g => g !== own);
            const top = parseFloat(label.closest('div[style*="top"]').style.top) - 90;
            return Math.max(1, Math.min(top, grid.scrollHeight - grid.clientHeight));
        }"""
    )
    for top in (target, target - 1, target):
        label.evaluate(
            """(label, top) => {
                const own = label.closest('.ReactVirtualized__Grid');
                document.querySelectorAll('.ReactVirtualized__Grid').forEach(grid => {
                    if (grid !== own) grid.scrollTop = top;
                });
            }""",
            top,
        )
        page.wait_for_timeout(250)
    # what a reader sees: the name and both values on one line, inside the table's window
    seen = label.evaluate(
        """label => {
            const cell = label.closest('div[style*="top"]');
            const own = cell.closest('.ReactVirtualized__Grid');
            const middle = r => r.top + r.height / 2;
            const window_ = own.getBoundingClientRect();
            const values = Array.from(document.querySelectorAll('.ReactVirtualized__Grid'))
                .filter(grid => grid !== own)
                .flatMap(grid => Array.from(grid.querySelectorAll('div[style*="top"]')))
                .filter(d => d.style.top === cell.style.top);
            const name = middle(cell.getBoundingClientRect());
            return {
                inside: name > window_.top && name < window_.bottom,
                offsets: values.map(v => Math.round(middle(v.getBoundingClientRect()) - name)),
            };
        }"""
    )
    assert seen["inside"] and all(abs(dy) <= 3 for dy in seen["offsets"]), (
        f"{METRIC} and its values are not on one visible line: {seen}"
    )
    screenshot(page, screenshot_dir / "mlflow-compare.png", capsys)
