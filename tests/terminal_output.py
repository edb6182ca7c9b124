"""What a sweep printed, read back: each child's closing summary and the leaderboard."""

from __future__ import annotations

import re

HEADER = re.compile(r"^== (\S+): task ")
BEST = re.compile(r"^\s+best epoch\s+\d+ of \d+ \((\S+) ([0-9.eE+-]+)\)")


def terminal_summaries(log: str) -> dict[str, dict[str, float]]:
    """Each child's numbers as its closing summary printed them, by run name: the best
    epoch's monitored metric (``best <metric>``, from the ``best epoch`` line) and every
    ``<metric>  <value>`` line (``test/accuracy``, ...)."""
    found: dict[str, dict[str, float]] = {}
    name = None
    for line in log.splitlines():
        if header := HEADER.match(line):
            name = header.group(1)
            found[name] = {}
        elif name is None:
            continue
        elif best := BEST.match(line):
            found[name][f"best {best.group(1)}"] = float(best.group(2))
        elif (cells := line.split()) and len(cells) == 2 and "/" in cells[0]:
            try:
                found[name][cells[0]] = float(cells[1])
            except ValueError:
                pass
    return found


def terminal_leaderboard(log: str, column: str) -> dict[str, float]:
    """The ``column`` of the leaderboard the sweep printed last, by run name (the table's
    cells are aligned under its header)."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Sweep leaderboard:")]
    assert starts, "the sweep printed no leaderboard"
    header = lines[starts[-1] + 1]
    run_at, value_at = header.index(" run ") + 1, header.index(column)
    table = {}
    for line in lines[starts[-1] + 2 :]:
        if not line.strip() or line.startswith("* best by"):
            break
        table[line[run_at:].split()[0]] = float(line[value_at:].split()[0])
    return table
