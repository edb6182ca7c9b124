"""What the browser test reads off MLflow's UI pages, and what it reads off the sweep's
terminal output to compare them with. Imported only where Playwright is installed."""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

TIMEOUT_MS = 60_000


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
    except PlaywrightTimeout:
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


def show_metric_column(page, key: str) -> None:
    """Add the metric ``key`` to the runs list's columns, as a user does: Columns, tick it."""
    page.get_by_role("button", name="Columns", exact=True).click()
    chooser = page.locator(
        '[data-component-id="mlflow.experiment_page.runs_table.column_selector"]'
    )
    chooser.get_by_placeholder("Search columns").fill(key)
    node = chooser.locator(".du-bois-light-tree-treenode")
    node.filter(has_text=re.compile(f"^{re.escape(key)}$")).first.click()
    page.keyboard.press("Escape")
    header = page.locator(f'[role="columnheader"][col-id="metrics.`{key}`"]')
    header.first.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert header.first.inner_text().strip() == key


def runs_list_cell(page, run_id: str, key: str) -> str:
    """The text of run ``run_id``'s cell in the runs list's metric column ``key``."""
    cell = page.locator(f'[role="row"][row-id="{run_id}"] [col-id="metrics.`{key}`"]').first
    cell.wait_for(state="visible", timeout=TIMEOUT_MS)
    return cell.inner_text().strip()


def open_runs_list(page, base: str, sweep: Any) -> None:
    """The experiment's runs list, with the children showing (the parent row expanded)."""
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
            except PlaywrightTimeout:
                pytest.fail(
                    "no expander on the parent run's row; the page shows:\n" + visible_text(page),
                    pytrace=False,
                )
    for name in names:
        wait_for_text(page, name)
    if sweep.parent is not None:
        assert page.get_by_text(sweep.parent.info.run_name, exact=True).first.is_visible()
    close_assistant(page)


def select_and_compare(page, sweep: Any) -> list:
    """Tick the children in the runs list, press Compare; the children in the compare
    page's order (its URL's ``runs``)."""
    for child in sweep.children:
        row = page.locator(f'[role="row"][row-id="{child.info.run_id}"]')
        row.locator('input[type="checkbox"]').first.check()
    page.get_by_role("button", name="Compare", exact=True).click()
    wait_for_text(page, f"Comparing {len(sweep.children)} Runs from 1 Experiment")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).fragment.split("?", 1)[1])
    ids = json.loads(query["runs"][0])
    by_id = {child.info.run_id: child for child in sweep.children}
    assert sorted(ids) == sorted(by_id), (ids, list(by_id))
    return [by_id[run_id] for run_id in ids]


def check_plot_axes(axes: list[str], children: list, swept: set[str], derived: set[str]) -> None:
    """The compare page's default parallel coordinates axes, as MLflow 3.17's UI picks
    them: the first three (sorted) params whose values differ between the runs, then the
    first metric all runs share. Ours: the swept keys (and ``n_params``, which the swept
    encoder changes), never a path, a cache or a preset's own key."""
    params = [child.data.params for child in children]
    differing = sorted(k for k in set().union(*params) if len({p.get(k) for p in params}) > 1)
    assert set(differing) - derived == swept, f"params that differ: {differing}"
    param_axes = [axis for axis in axes if any(axis in p for p in params)]
    assert axes[: len(param_axes)] == param_axes == differing[:3], (axes, differing)
    assert set(param_axes) - derived == swept, f"param axes {param_axes}, swept {swept}"
    metrics = axes[len(param_axes) :]
    assert len(metrics) == 1 and all(metrics[0] in c.data.metrics for c in children), axes


def model_metric_row(page, key: str) -> list[str]:
    """The cells of the line ``key`` in a logged model page's Metrics table (metric,
    dataset, source run, value)."""
    name = page.get_by_text(key, exact=True)
    row = page.locator('[role="row"], tr').filter(has=name).last
    try:
        row.wait_for(state="visible", timeout=TIMEOUT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"no {key!r} on the model's page; it shows:\n{visible_text(page, 4000)}")
    cells = [c.strip() for c in row.inner_text().split("\n") if c.strip()]
    assert cells[0] == key, cells
    return cells


def plot_axes(page) -> list[str]:
    """The axis titles of the compare page's parallel coordinates plot, left to right."""
    titles = page.locator(".pcp-plot .parcoords .y-axis .axis-heading .axis-title")
    try:
        titles.first.wait_for(state="attached", timeout=TIMEOUT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"no parallel coordinates plot; the page shows:\n{visible_text(page)}")
    return [t.strip() for t in titles.all_text_contents()]


def metric_label(page, key: str):
    """The name ``key`` in the compare page's Metrics table (a link), once it is there."""
    label = page.get_by_role("link", name=key, exact=True).first
    try:
        label.wait_for(state="attached", timeout=TIMEOUT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"no {key!r} in the metrics table; the page shows:\n{visible_text(page, 6000)}")
    return label


def metric_line(label) -> list[str]:
    """The compare page's Metrics table: the values on the line of the metric name ``label``
    (a locator), left to right. The table is two virtualized grids side by side (names |
    values), each 300 px high and scrolling inside itself; a line's cells share its ``top``."""
    return label.evaluate(
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


def scroll_to_line(page, label) -> dict:
    """Scroll the Metrics table to the line of ``label``; where its name and values show:
    ``inside`` (the name inside the table's window) and each value's vertical ``offsets``."""
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
    return label.evaluate(
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
