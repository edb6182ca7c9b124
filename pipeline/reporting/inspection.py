"""What ``python -m pipeline inspect`` writes: a heatmap PNG (tokens x units) per quantity of
a recurrent layer, and a self-contained HTML page with the text coloured by one unit's
activation (no external assets: the numbers, styles and script are in the page).

Both read the same payload as the JSON file: ``tokens`` [T], ``units`` [U] (feature indices of
the layer's output), ``gates`` (the quantities that are sigmoid gates, in (0, 1)) and
``quantities``: name -> T rows of U values.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from pipeline.reporting.plots import _pyplot

ROW_INCHES = 0.16  # a token's row in a heatmap
MAX_LABEL = 18  # characters of a token shown on a heatmap's axis
DPI = 90


def heatmaps(payload: dict[str, Any], folder: Path) -> list[Path]:
    """One PNG per quantity, ``<quantity>.png``: tokens down, units across; gates on a 0..1
    scale, the other quantities on a scale symmetric about 0.

    Laying out and drawing a label per token is nearly all the cost, and the labels are the
    same in every heatmap: the figure is drawn once without the heatmap, title and colour
    bar, and each quantity draws only those on a copy of it (Agg blitting)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    fig, ax, bar, image = _figure(payload)
    changing = [image, ax.title, bar]
    for artist in changing:
        artist.set_visible(False)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    renderer = fig.canvas.get_renderer()
    for artist in changing:
        artist.set_visible(True)
    written = []
    encoder = ThreadPoolExecutor(max_workers=2)  # PNG encoding (zlib) runs beside the drawing
    for name, values in payload["quantities"].items():
        gate = name in payload["gates"]
        peak = max((abs(v) for row in values for v in row), default=1.0) or 1.0
        image.set_data(values or [[0.0] * len(payload["units"])])
        image.set_cmap("viridis" if gate else "RdBu_r")
        image.set_clim(*((0.0, 1.0) if gate else (-peak, peak)))
        ax.set_title(f"layer {payload['layer']}: {name}" + (" (gate)" if gate else ""), fontsize=9)
        fig.canvas.restore_region(background)
        for artist in [image, *ax.spines.values(), ax.title]:
            ax.draw_artist(artist)
        bar.draw(renderer)
        path = folder / f"{name}.png"
        pixels = np.array(fig.canvas.buffer_rgba())  # a copy: the canvas is drawn again
        encoder.submit(Image.fromarray(pixels).save, path, compress_level=1, dpi=(DPI, DPI))
        written.append(path)
    encoder.shutdown(wait=True)
    _pyplot().close(fig)
    return written


def _figure(payload: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """(figure, heatmap axes, colour bar axes, image): a row per token, fixed margins."""
    from matplotlib.transforms import blended_transform_factory

    plt = _pyplot()
    tokens = [t if len(t) <= MAX_LABEL else t[: MAX_LABEL - 1] + "…" for t in payload["tokens"]]
    units = [str(u) for u in payload["units"]]
    width = 2.6 + 0.42 * max(len(units), 4)
    height = 1.6 + ROW_INCHES * max(len(tokens), 4)
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    left, right, top, bottom = 1.3, 1.2, 0.45, 0.75  # inches
    tall = 1 - (top + bottom) / height
    ax = fig.add_axes((left / width, bottom / height, 1 - (left + right) / width, tall))
    bar = fig.add_axes((1 - (right - 0.25) / width, bottom / height, 0.18 / width, tall))
    first = next(iter(payload["quantities"].values()), [])
    image = ax.imshow(first or [[0.0] * len(units)], aspect="auto", interpolation="nearest")
    # A plain text per token: a tick per token (two lines and two labels each) costs 4x more.
    ax.set_yticks([])
    rows = blended_transform_factory(ax.transAxes, ax.transData)
    for row, token in enumerate(tokens):
        ax.text(-0.02, row, token, transform=rows, ha="right", va="center", fontsize=7)
    ax.set_xticks(range(len(units)), units, fontsize=7, rotation=90)
    ax.set_xlabel("unit")
    ax.tick_params(length=0)
    fig.colorbar(image, cax=bar)
    return fig, ax, bar, image


def page(payload: dict[str, Any], path: Path) -> Path:
    """The HTML page: the text as one span per token, coloured by the chosen quantity of the
    chosen unit (selectors at the top); hovering a token shows every quantity's value."""
    spans = " ".join(
        f'<span class="tok" data-i="{i}">{html.escape(token)}</span>'
        for i, token in enumerate(payload["tokens"])
    )
    data = json.dumps(payload, ensure_ascii=False).replace("</", "<\\/")
    title = html.escape(f"inspect: layer {payload['layer']} of {payload['model']}")
    text = _PAGE.replace("{title}", title).replace("{spans}", spans).replace("{data}", data)
    path.write_text(text, encoding="utf-8")
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body { font: 15px/1.9 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
#text { padding: 1em; border: 1px solid #ddd; border-radius: 6px; }
.tok { padding: 2px 1px; border-radius: 3px; cursor: default; }
#info { font: 13px monospace; min-height: 1.5em; color: #444; white-space: pre; }
label { margin-right: 1.5em; }
</style></head>
<body>
<h1 style="font-size:1.2em">{title}</h1>
<p>
<label>quantity <select id="quantity"></select></label>
<label>unit <select id="unit"></select></label>
<span id="scale"></span>
</p>
<div id="text">{spans}</div>
<p id="info">hover a token to see its values</p>
<script type="application/json" id="data">{data}</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const quantity = document.getElementById("quantity"), unit = document.getElementById("unit");
const tokens = Array.from(document.querySelectorAll(".tok"));
for (const name of Object.keys(data.quantities)) quantity.add(new Option(name, name));
data.units.forEach((u, k) => unit.add(new Option(
  u + (data.directions > 1 ? (data.unit_directions[k] ? " (backward)" : " (forward)") : ""), k)));
if (data.quantities.cell) quantity.value = "cell";
else if (data.quantities.hidden) quantity.value = "hidden";
function colour(value, gate, peak) {
  if (gate) return `rgba(46, 160, 67, ${value.toFixed(3)})`;
  const a = Math.min(Math.abs(value) / peak, 1).toFixed(3);
  return value >= 0 ? `rgba(214, 39, 40, ${a})` : `rgba(31, 119, 180, ${a})`;
}
function paint() {
  const rows = data.quantities[quantity.value], k = Number(unit.value);
  const gate = data.gates.includes(quantity.value);
  const peak = Math.max(1e-9, ...rows.map(r => Math.abs(r[k])));
  document.getElementById("scale").textContent = gate ? "green: gate open (1), clear: 0"
    : `red: +, blue: -, full colour at |${peak.toFixed(3)}|`;
  tokens.forEach((span, i) => {
    span.style.background = colour(rows[i][k], gate, peak);
    span.title = `${quantity.value} = ${rows[i][k].toFixed(4)}`;
  });
}
function show(event) {
  const i = Number(event.target.dataset.i), k = Number(unit.value);
  const parts = Object.entries(data.quantities).map(([n, rows]) => `${n} ${rows[i][k].toFixed(4)}`);
  document.getElementById("info").textContent =
    `${JSON.stringify(data.tokens[i])}  unit ${data.units[k]}:  ` + parts.join("  ");
}
tokens.forEach(span => span.addEventListener("mouseenter", show));
quantity.addEventListener("change", paint);
unit.addEventListener("change", paint);
paint();
</script>
</body></html>
"""
