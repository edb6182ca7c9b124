"""The leaderboard's rules on plain rows (ranking, the winner, what varied, times), and the
``runs`` command's usage and store errors; on a real sweep: ``tests/run/test_sweep.py``."""

from __future__ import annotations

import math

import pytest

from pipeline.reporting.leaderboard import (
    Row,
    cells,
    clock,
    markdown_table,
    mode_for,
    ranked,
    text_table,
    varying_params,
)


def rows() -> list[Row]:
    return [
        Row("a", "1", score=0.5, metrics={"test/accuracy": 0.4}),
        Row("b", "2", score=0.7),
        Row("c", "3", status="FAILED", score=0.9),  # better, but it did not finish
        Row("d", "4", score=None),
        Row("e", "5", score=math.nan),
        Row("f", "6", score=0.6, status="RUNNING"),
    ]


def test_finished_runs_rank_first_best_first_by_the_monitor_mode():
    assert [r.name for r in ranked(rows(), "max")] == ["b", "a", "d", "e", "c", "f"]
    assert [r.name for r in ranked(rows(), "min")] == ["a", "b", "d", "e", "f", "c"]


def test_only_a_finished_first_row_is_marked_the_winner():
    header, body = cells(ranked(rows(), "max"), "best/val/accuracy")
    assert [line[0] for line in body] == ["*", "", "", "", "", ""]
    assert header[-1] == "status"  # shown because some runs did not finish
    _, body = cells(ranked([rows()[2]], "max"), "best/val/accuracy")
    assert body[0][0] == ""  # a failed run is never the winner
    _, body = cells([Row("x", "9", score=0.1)], "best/val/accuracy")
    assert body[0][0] == "*"


def test_tables_hold_the_same_rows_in_the_same_order():
    ordered = ranked(rows(), "max")
    text = text_table(ordered, "best/val/accuracy", "max")
    markdown = markdown_table(ordered, "best/val/accuracy", "max")
    names = [line.split()[2 if line.startswith("*") else 1] for line in text.splitlines()[1:-1]]
    assert names == [r.name for r in ordered] and text.splitlines()[1].split()[:3] == [
        "*",
        "1",
        "b",
    ]
    body = [line.split(" | ")[2] for line in markdown.splitlines()[2:] if line.startswith("| ")]
    assert body == [r.name for r in ordered]
    assert "0.4000" in markdown and "test/accuracy" in markdown
    assert text.endswith("(higher is better)")


def test_what_varied_and_the_direction_of_a_metric():
    params = [{"encoder": "lstm", "seed": "1", "n_params": "10"}, {"encoder": "gru", "seed": "1"}]
    params[1]["n_params"] = "12"
    assert varying_params(params) == ["encoder"]  # n_params follows from the encoder
    assert varying_params([{"lr": "0.1"}, {}]) == ["lr"]  # set in one run only
    assert varying_params([{"lr": "0.1"}]) == []
    assert [mode_for(k) for k in ("best/val/accuracy", "val/loss", "test/perplexity")] == [
        "max",
        "min",
        "min",
    ]
    assert [clock(s) for s in (None, 3.04, 65, 3725)] == ["-", "3.0s", "1m05s", "1h02m"]


def runs(monkeypatch, capsys, cwd, *args: str) -> tuple[int, str, str]:
    from pipeline.__main__ import main

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["runs", *args])
    out = capsys.readouterr()
    return int(stopped.value.code or 0), out.out, out.err


def test_runs_has_help_and_names_a_missing_store(monkeypatch, capsys, tmp_path):
    code, out, _ = runs(monkeypatch, capsys, tmp_path, "--help")
    assert code == 0 and "--compare RUN1 RUN2" in out and "--sort" in out
    code, _, err = runs(monkeypatch, capsys, tmp_path)
    assert code == 2 and err.startswith("error: No MLflow store at sqlite:///mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()  # looking never creates a store
