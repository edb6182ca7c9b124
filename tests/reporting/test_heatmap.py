"""``inspect``'s heatmap PNGs, drawn with Pillow: a row per token and a column per unit,
each cell the colour of its value on the scale, labels and a colour bar beside; the colour
tables are matplotlib's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.reporting import heatmap
from pipeline.reporting.inspection import heatmaps

TOKENS = ["the", "film", "was", "a", "complete", "waste", "of", "time", "."]
UNITS = [3, 17, 42, 101]


def payload(rows: int = len(TOKENS)) -> dict:
    """Two quantities over TOKENS[:rows] x UNITS: a gate in (0, 1) and a signed state."""
    grid = np.arange(rows * len(UNITS), dtype=float).reshape(rows, len(UNITS))
    gate = (grid + 0.5) / grid.size
    return {
        "layer": 0,
        "tokens": TOKENS[:rows],
        "units": UNITS,
        "gates": ["forget"],
        "quantities": {"forget": gate.tolist(), "cell": (2 * gate - 1).tolist()},
    }


def cell_colour(image: Image.Image, base: heatmap.Frame, row: int, column: int) -> np.ndarray:
    """The RGB colour at the middle of a cell."""
    x = base.left + column * base.cell + base.cell // 2
    y = base.top + row * heatmap.ROW + heatmap.ROW // 2
    return np.array(image.convert("RGB").getpixel((x, y)))


def test_a_png_per_quantity_with_a_row_per_token_and_a_column_per_unit(tmp_path):
    data = payload()
    written = heatmaps(data, tmp_path)
    assert [p.name for p in written] == ["forget.png", "cell.png"]
    base = heatmap.frame(TOKENS, [str(u) for u in UNITS], "unit")
    for path, name in zip(written, ("forget", "cell"), strict=True):
        image = Image.open(path)
        assert image.format == "PNG" and image.size == base.image.size
        gate = name in data["gates"]
        values = np.array(data["quantities"][name])
        low, high = (0.0, 1.0) if gate else (-np.abs(values).max(), np.abs(values).max())
        levels = heatmap.LEVELS  # the palette's colours of the table
        table = heatmap.colour_table(heatmap.VIRIDIS if gate else heatmap.RDBU_R, levels)
        for row in range(len(TOKENS)):
            for column in range(len(UNITS)):
                level = (values[row, column] - low) / (high - low)
                expected = table[round(level * (levels - 1))].astype(int)
                found = cell_colour(image, base, row, column)
                assert np.abs(found - expected).max() <= 1, (name, row, column)


def test_the_labels_are_drawn_beside_their_rows_and_over_their_columns(tmp_path):
    base = heatmap.frame(TOKENS, [str(u) for u in UNITS], "unit")
    grey = np.asarray(base.image)
    for row in range(len(TOKENS)):  # ink left of every row, none right of the cells
        band = grey[base.top + row * heatmap.ROW : base.top + (row + 1) * heatmap.ROW]
        assert band[:, : base.left - 2].min() < 128, TOKENS[row]
    for column in range(len(UNITS)):
        x = base.left + column * base.cell
        assert grey[: base.top - 2, x : x + base.cell].min() < 128, UNITS[column]
    longer = heatmap.frame([*TOKENS[:-1], "extraordinarily"], ["3", "17", "42", "101"], "unit")
    assert longer.left > base.left  # the margin fits the longest label


@pytest.mark.parametrize("rows", [1, 30])
def test_short_and_long_texts_keep_a_readable_colour_bar(tmp_path, rows):
    data = payload(1)
    data["tokens"] = ["word"] * rows
    data["quantities"] = {"forget": [[0.5] * len(UNITS)] * rows}
    (path,) = heatmaps(data, tmp_path)
    base = heatmap.frame(data["tokens"], [str(u) for u in UNITS], "unit")
    assert heatmap.MIN_BAR <= base.bar_height <= heatmap.MAX_BAR
    assert Image.open(path).height >= base.top + max(rows * heatmap.ROW, base.bar_height)


def test_the_colour_tables_are_matplotlibs_viridis_and_rdbu_r():
    matplotlib = pytest.importorskip("matplotlib")
    levels = np.linspace(0, 1, 256)
    for anchors, name in ((heatmap.VIRIDIS, "viridis"), (heatmap.RDBU_R, "RdBu_r")):
        theirs = matplotlib.colormaps[name](levels)[:, :3] * 255
        assert np.abs(heatmap.colour_table(anchors).astype(float) - theirs).max() <= 6, name


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-1.26, 1.26), (-0.004, 0.004), (-37, 37)])
def test_colour_bar_ticks_are_a_few_round_values_inside_the_scale(low, high):
    ticks = heatmap.ticks(low, high)
    assert 3 <= len(ticks) <= 6 and low <= ticks[0] and ticks[-1] <= high
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
