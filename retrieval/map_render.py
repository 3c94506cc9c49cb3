"""Drawing a library map: a PNG through matplotlib, or one self-contained interactive HTML file."""
from __future__ import annotations

import colorsys
import html
import json
from pathlib import Path
from typing import BinaryIO, TextIO

from .errors import UsageError
from .extras import pyplot
from .projection import LibraryMap, MapPoint

COLOUR_BY = ("auto", "cluster", "label")
# matplotlib's tab20, so that the PNG and the HTML page colour the same group alike.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5")
NO_GROUP = "#b0b0b0"
LEGEND_LIMIT = 24


def groups(library_map: LibraryMap, colour_by: str = "auto") -> tuple[str, list[str], dict[str, str]]:
    """(what colours mean, each point's group name, group -> colour); 'auto' is cluster when clustered, else label."""
    if colour_by not in COLOUR_BY:
        raise UsageError(f"unknown --colour-by {colour_by!r}; choose one of {', '.join(COLOUR_BY)}")
    if colour_by == "auto":
        colour_by = "cluster" if any(point.cluster is not None for point in library_map.points) else "label"
    names = [_group(point, colour_by) for point in library_map.points]
    distinct = sorted({name for name in names if name != "-"}, key=lambda name: (not name.isdigit(), len(name)
                                                                                if name.isdigit() else 0, name))
    colours = {name: _colour(number) for number, name in enumerate(distinct)}
    colours["-"] = NO_GROUP
    return colour_by, names, colours


def titles(library_map: LibraryMap, meaning: str, names: list[str]) -> dict[str, str]:
    """Legend text of each group: a cluster with its majority label ('3: bell'), a label as it is."""
    found: dict[str, dict[str, int]] = {}
    for point, name in zip(library_map.points, names):
        if meaning == "cluster" and point.label:
            counts = found.setdefault(name, {})
            counts[point.label] = counts.get(point.label, 0) + 1
    text = {name: f"{name}: {max(sorted(counts), key=counts.get)}" for name, counts in found.items()}
    return {name: text.get(name, name) if name != "-" else f"no {meaning}" for name in set(names)}


def _group(point: MapPoint, colour_by: str) -> str:
    value = point.cluster if colour_by == "cluster" else point.label
    return "-" if value is None else str(value)


def _colour(number: int) -> str:
    if number < len(PALETTE):
        return PALETTE[number]
    red, green, blue = colorsys.hsv_to_rgb((number * 0.618034) % 1.0, 0.65, 0.85)
    return f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"


def map_format(out: str | Path) -> str:
    """'png' or 'html', from the suffix of the file to write; anything else is a usage error."""
    suffix = Path(out).suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise UsageError(f"--out must end in .png or .html, not {Path(out).name!r}")
    return "png" if suffix == ".png" else "html"


def render_map(library_map: LibraryMap, out: str | Path, colour_by: str = "auto", audio_url: str | None = None) -> Path:
    """Write the map to `out`, a .png or an .html file by its suffix; returns the path."""
    if map_format(out) == "png":
        render_map_png(library_map, out, colour_by)
    else:
        render_map_html(library_map, out, audio_url, colour_by)
    return Path(out)


def render_map_png(library_map: LibraryMap, out: str | Path | BinaryIO, colour_by: str = "auto") -> None:
    """A scatter plot of the map: one dot per recording coloured by group, references as outlined stars."""
    plt = pyplot()
    meaning, names, colours = groups(library_map, colour_by)
    legend = titles(library_map, meaning, names)
    points = library_map.points
    size = 18 if len(points) < 2000 else max(1.0, 18 * (2000 / len(points)) ** 0.5)
    figure, axes = plt.subplots(figsize=(9, 7.5), dpi=110)
    for name, colour in colours.items():
        chosen = [point for point, group in zip(points, names) if group == name and not point.is_reference]
        if chosen:
            axes.scatter([p.x for p in chosen], [p.y for p in chosen], s=size, c=colour, linewidths=0, alpha=0.85,
                         label=legend[name])
    references = [(point, group) for point, group in zip(points, names) if point.is_reference]
    if references:
        axes.scatter([p.x for p, _ in references], [p.y for p, _ in references], s=140, marker="*",
                     c=[colours[group] for _, group in references], edgecolors="black", linewidths=0.8,
                     label="reference", zorder=3)
    axes.set_title(f"{len(points)} recordings, {library_map.method.upper()}, coloured by {meaning}")
    axes.set_xlabel(f"{library_map.method.upper()} 1")
    axes.set_ylabel(f"{library_map.method.upper()} 2")
    axes.grid(alpha=0.25)
    if len(colours) <= LEGEND_LIMIT:
        axes.legend(title=meaning, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, title_fontsize=9,
                    frameon=False, markerscale=1.5 if size < 18 else 1.0)
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)


def render_map_html(library_map: LibraryMap, out: str | Path | TextIO, audio_url: str | None = None,
                    colour_by: str = "auto") -> None:
    """One self-contained HTML file: hover shows the file name and label; click plays the recording.

    `audio_url` is a template such as "/api/recordings/{id}/audio" (served by the web page); without it a
    click tries the file itself (file:// URL), which browsers allow for a page opened from disk.
    """
    meaning, names, colours = groups(library_map, colour_by)
    legend = titles(library_map, meaning, names)
    data = {"method": library_map.method, "meaning": meaning, "audio": audio_url,
            "legend": [[legend[name], colour] for name, colour in colours.items() if name in legend],
            "points": [[p.recording_id, round(p.x, 5), round(p.y, 5), p.path, p.label or "", "" if p.cluster is None
                        else p.cluster, int(p.is_reference), colours[group]] for p, group in zip(library_map.points, names)]}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(f"Soundalike map: {len(library_map.points)} recordings ({library_map.method.upper()})")
    page = HTML_TEMPLATE.replace("__TITLE__", title).replace("__DATA__", payload)
    if hasattr(out, "write"):
        out.write(page)
    else:
        Path(out).write_text(page, encoding="utf-8")


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;display:flex;height:100vh;color:#222}
#plot{flex:1;position:relative}canvas{width:100%;height:100%;display:block;cursor:crosshair}
#side{width:220px;overflow:auto;padding:12px;border-left:1px solid #ddd}
#tip{position:absolute;pointer-events:none;background:#fff;border:1px solid #999;padding:4px 6px;
border-radius:4px;font-size:12px;display:none;white-space:nowrap;box-shadow:0 1px 4px #0003}
.key{display:flex;align-items:center;gap:6px;margin:2px 0}.dot{width:10px;height:10px;border-radius:50%}
</style></head><body>
<div id="plot"><canvas id="canvas"></canvas><div id="tip"></div></div>
<div id="side"><h3>__TITLE__</h3><p id="how"></p><div id="legend"></div></div>
<script id="data" type="application/json">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById("data").textContent);
const canvas = document.getElementById("canvas"), tip = document.getElementById("tip");
const ctx = canvas.getContext("2d"), pts = data.points;
document.getElementById("how").textContent = "Coloured by " + data.meaning + "; stars are references. " +
  "Hover for the file, click to play it.";
const legend = document.getElementById("legend");
for (const [name, colour] of data.legend) {
  const row = document.createElement("div"); row.className = "key";
  const dot = document.createElement("span"); dot.className = "dot"; dot.style.background = colour;
  row.append(dot, document.createTextNode(name.startsWith("no ") ? name : data.meaning + " " + name));
  legend.append(row);
}
const lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
for (const p of pts) { lo[0] = Math.min(lo[0], p[1]); lo[1] = Math.min(lo[1], p[2]);
  hi[0] = Math.max(hi[0], p[1]); hi[1] = Math.max(hi[1], p[2]); }
let screen = [];
function draw() {
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight, pad = 24;
  canvas.width = w * ratio; canvas.height = h * ratio; ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const sx = (w - 2 * pad) / ((hi[0] - lo[0]) || 1), sy = (h - 2 * pad) / ((hi[1] - lo[1]) || 1);
  screen = pts.map(p => [pad + (p[1] - lo[0]) * sx, h - pad - (p[2] - lo[1]) * sy]);
  const r = pts.length > 5000 ? 2 : 4;
  pts.forEach((p, i) => { if (!p[6]) { ctx.fillStyle = p[7]; ctx.beginPath();
    ctx.arc(screen[i][0], screen[i][1], r, 0, 2 * Math.PI); ctx.fill(); } });
  pts.forEach((p, i) => { if (p[6]) star(screen[i][0], screen[i][1], 9, p[7]); });
}
function star(x, y, r, colour) {
  ctx.beginPath();
  for (let k = 0; k < 10; k++) { const a = Math.PI / 5 * k - Math.PI / 2, d = k % 2 ? r / 2.5 : r;
    ctx.lineTo(x + d * Math.cos(a), y + d * Math.sin(a)); }
  ctx.closePath(); ctx.fillStyle = colour; ctx.fill(); ctx.strokeStyle = "#000"; ctx.stroke();
}
function nearest(event) {
  const box = canvas.getBoundingClientRect(), x = event.clientX - box.left, y = event.clientY - box.top;
  let best = -1, bestD = 64;
  for (let i = 0; i < screen.length; i++) { const dx = screen[i][0] - x, dy = screen[i][1] - y, d = dx * dx + dy * dy;
    if (d < bestD) { bestD = d; best = i; } }
  return [best, x, y];
}
canvas.addEventListener("mousemove", event => {
  const [i, x, y] = nearest(event);
  if (i < 0) { tip.style.display = "none"; return; }
  const p = pts[i];
  tip.textContent = p[3].split(/[\\\\/]/).pop() + (p[4] ? "  [" + p[4] + "]" : "") +
    (p[5] !== "" ? "  cluster " + p[5] : "") + (p[6] ? "  reference" : "");
  tip.style.left = (x + 12) + "px"; tip.style.top = (y + 12) + "px"; tip.style.display = "block";
});
canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
let playing = null;
canvas.addEventListener("click", event => {
  const [i] = nearest(event);
  if (i < 0) return;
  const p = pts[i];
  const url = data.audio ? data.audio.replace("{id}", p[0]) : "file://" + encodeURI(p[3]);
  if (playing) playing.pause();
  playing = new Audio(url); playing.play().catch(() => { tip.textContent = "cannot play " + url; });
});
window.addEventListener("resize", draw); draw();
</script></body></html>
"""
