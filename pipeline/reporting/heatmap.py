"""Heatmap PNGs drawn with Pillow alone: a rows x columns array coloured through a colour
table, a label per row down the left, a label per column along the bottom, a title and a
colour bar with ticks.

``inspect`` writes one per quantity of a recurrent layer (tokens x units). Matplotlib took
about 0.5 s to import and 1 to 2 s to lay out and draw six of them for a 200-word text on a
2-core CPU. Here the labels are drawn once, in grey levels, into a :class:`Frame` that every
quantity's image copies, and the cells are a table lookup (numpy). Each image is a palette
PNG: 128 colours of the colour table, then 128 greys from the ink to white for the
(anti-aliased) text, one byte a pixel, which zlib encodes three times faster than RGB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Matplotlib's ``viridis`` (17 evenly spaced samples: within 6/255 of it once interpolated)
#: and ``RdBu_r`` (ColorBrewer's 11 colours, which it interpolates): low to high.
VIRIDIS = (
    "440154 48186a 472d7b 424086 3b528b 33638d 2c728e 26828e 21918c 1fa088 28ae80 3fbc73 "
    "5ec962 84d44b addc30 d8e219 fde725"
)
RDBU_R = "053061 2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b 67001f"

ROW = 14  # pixels per row (a token)
FONT_SIZE = 11
MAX_LABEL = 18  # characters of a row label shown
PAD = 8
BAR_WIDTH = 14
MIN_BAR, MAX_BAR = 120, 320  # the colour bar's height: the cells' height within these
LEVELS = 128  # palette entries of the colour table; the other 128 are greys
INK = 34  # the text's grey (0..255): palette entry LEVELS is this, the last one white
LINE = 64  # the frame lines' grey level in the frame's "L" image (a mid grey)


@cache
def colour_table(anchors: str, levels: int = 256) -> np.ndarray:
    """``levels`` RGB colours [levels, 3] uint8, linearly interpolated between the hex
    ``anchors`` (low to high)."""
    rgb = np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in anchors.split()])
    where = np.linspace(0.0, 1.0, len(rgb))
    table = [np.interp(np.linspace(0.0, 1.0, levels), where, rgb[:, c]) for c in range(3)]
    return np.rint(np.stack(table, axis=1)).astype(np.uint8)


@cache
def palette(anchors: str) -> bytes:
    """The PNG palette: LEVELS colours of the table, then LEVELS greys from INK to white."""
    greys = np.rint(np.linspace(INK, 255, LEVELS)).astype(np.uint8)
    return np.concatenate(
        [colour_table(anchors, LEVELS), np.repeat(greys[:, None], 3, 1)]
    ).tobytes()


@cache
def font() -> Any:
    """Pillow's own font at FONT_SIZE (a FreeType font; the bitmap one where Pillow lacks
    FreeType): nothing to find on the machine."""
    return ImageFont.load_default(size=FONT_SIZE)


def cell_width(columns: int) -> int:
    """Pixels per column: wide for a few units, narrower (still a label's height) for many."""
    return 34 if columns <= 40 else ROW + 2


@dataclass
class Frame:
    """What every heatmap of one set of labels shares: the image with the labels drawn, and
    where the cells, the colour bar and the title go."""

    image: Image.Image
    left: int
    top: int
    rows: int
    columns: int
    cell: int
    bar_left: int
    bar_height: int


def frame(row_labels: Sequence[str], column_labels: Sequence[str], axis: str) -> Frame:
    """A white image with the row labels (right-aligned beside each row) and, above the
    cells, the column labels (rotated, one over each column) and their name ``axis``: at
    the top, where a tall heatmap is first seen, with the colour bar beside them."""
    face = font()
    rows = [s if len(s) <= MAX_LABEL else s[: MAX_LABEL - 1] + "…" for s in row_labels]
    cell = cell_width(len(column_labels))
    left = PAD + math.ceil(max((face.getlength(s) for s in [axis, *rows]), default=0)) + 6
    column_text = math.ceil(max((face.getlength(s) for s in column_labels), default=0))
    top = PAD + FONT_SIZE + 8 + column_text + 6
    height, width = ROW * len(rows), cell * len(column_labels)
    bar_height = min(max(height, MIN_BAR), MAX_BAR)
    bar_left = left + width + 16
    tick_text = math.ceil(face.getlength("-0.000")) + 10
    size = (bar_left + BAR_WIDTH + 6 + tick_text + PAD, top + max(height, bar_height) + PAD)
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for row, label in enumerate(rows):
        _text(draw, (left - 4, top + row * ROW + ROW / 2), label, "right")
    if column_labels:
        strip = Image.new("L", (column_text + 2, width), 255)  # drawn across, then turned
        written = ImageDraw.Draw(strip)
        for column, label in enumerate(column_labels):
            _text(written, (1, column * cell + cell / 2), label, "left")
        image.paste(strip.rotate(90, expand=True), (left, top - 4 - strip.width))
    _text(draw, (left - 4, top - 4 - FONT_SIZE / 2), axis, "right")
    return Frame(image, left, top, len(rows), len(column_labels), cell, bar_left, bar_height)


def draw_heatmap(
    base: Frame, values: Any, title: str, scale: tuple[float, float], colours: str
) -> Image.Image:
    """A palette image: ``base`` with ``values`` [rows, columns] coloured on ``scale``
    (low, high) through the table of ``colours``, the title above and the colour bar beside."""
    low, high = scale
    grey = base.image.copy()
    draw = ImageDraw.Draw(grey)
    width, height = base.cell * base.columns, ROW * base.rows
    _text(draw, (base.left + width / 2, PAD + FONT_SIZE / 2), title, "centre")
    right = base.bar_left + BAR_WIDTH
    draw.rectangle((base.bar_left - 1, base.top - 1, right, base.top + base.bar_height), LINE)
    for value in ticks(low, high):
        y = base.top + (high - value) / (high - low) * (base.bar_height - 1)
        draw.line((right, y, right + 4, y), fill=LINE)
        _text(draw, (right + 7, y), f"{value:g}", "left")
    if height and width:
        draw.rectangle((base.left - 1, base.top - 1, base.left + width, base.top + height), LINE)
    pixels = (np.asarray(grey, dtype=np.uint16) * (LEVELS - 1) // 255 + LEVELS).astype(np.uint8)
    cells = np.nan_to_num(np.asarray(values, dtype=np.float64).reshape(base.rows, base.columns))
    index = np.clip(np.rint((cells - low) / (high - low) * (LEVELS - 1)), 0, LEVELS - 1)
    block = np.repeat(np.repeat(index.astype(np.uint8), ROW, axis=0), base.cell, axis=1)
    pixels[base.top : base.top + height, base.left : base.left + width] = block
    bar = np.rint(np.linspace(LEVELS - 1, 0, base.bar_height)).astype(np.uint8)
    pixels[base.top : base.top + base.bar_height, base.bar_left : right] = bar[:, None]
    image = Image.fromarray(pixels, mode="P")
    image.putpalette(palette(colours))
    return image


def ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round values (steps of 1, 2, 2.5 or 5 times a power of ten) from low to high, at most
    ``most`` of them, as a plot's axis would show."""
    span = high - low
    if not span > 0 or not math.isfinite(span):
        return [low]
    power = 10 ** math.floor(math.log10(span / (most - 1)))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if span / (m * power) <= most - 1)
    first = math.ceil(low / step - 1e-9)
    count = math.floor(high / step + 1e-9) - first + 1
    return [round((first + k) * step, 12) + 0.0 for k in range(count)]


def _text(draw: Any, at: tuple[float, float], text: str, align: str) -> None:
    """``text`` vertically centred on ``at``; ``align``: which end (or the centre) is at x.
    Positions come from the font's boxes, so the bitmap font works as well."""
    face = font()
    top, bottom = face.getbbox("Ag")[1::2]
    width = face.getlength(text)
    x = at[0] - {"left": 0.0, "centre": width / 2, "right": width}[align]
    draw.text((round(x), round(at[1] - (top + bottom) / 2)), text, fill=0, font=face)
