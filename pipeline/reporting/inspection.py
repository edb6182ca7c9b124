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


def heatmaps(payload: dict[str, Any], folder: Path) -> list[Path]:
    """One PNG per quantity, ``<quantity>.png``: tokens down, units across; gates (viridis)
    on a 0..1 scale, the other quantities (red-blue) on a scale symmetric about 0.

    The labels are the same in every heatmap: they are drawn once (``heatmap.frame``) and
    each quantity draws its cells, title and colour bar on a copy (``heatmap``: Pillow, no
    matplotlib; six heatmaps of a 230-token text take about 0.1 s)."""
    from pipeline.reporting.heatmap import RDBU_R, VIRIDIS, draw_heatmap, frame

    base = frame(payload["tokens"], [str(u) for u in payload["units"]], "unit")
    written = []
    for name, values in payload["quantities"].items():
        gate = name in payload["gates"]
        peak = max((abs(v) for row in values for v in row), default=1.0) or 1.0
        title = f"layer {payload['layer']}: {name}" + (" (gate)" if gate else "")
        scale = (0.0, 1.0) if gate else (-peak, peak)
        path = folder / f"{name}.png"
        draw_heatmap(base, values, title, scale, VIRIDIS if gate else RDBU_R).save(
            path, compress_level=1
        )
        written.append(path)
    return written


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
