"""metrics.jsonl -> small inline SVG line plots, one per scalar (no JavaScript needed).

Each line of metrics.jsonl is a JSON object; its ``step`` field (or the line number when absent)
is the x axis and every other finite number is a series, except the wall-clock ``time`` field
written by the engine's logger. Other values (strings, lists) are
ignored, as are lines that are not valid JSON (e.g. a line cut off by a crash).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

MAX_POINTS = 1000  # per series: plenty for a 640-pixel-wide plot, and keeps the page small
MAX_LINES = 1_000_000
NOT_SERIES = {"step", "time"}


def read_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Scalar series by name: [(step, value), ...] in file order."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            if number >= MAX_LINES:
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            step = record.get("step", number)
            if not _is_number(step):
                step = number
            for key, value in record.items():
                if key not in NOT_SERIES and _is_number(value):
                    series.setdefault(str(key), []).append((float(step), float(value)))
    return series


def line_plot_svg(name: str, points: list[tuple[float, float]], width: int = 320, height: int = 160) -> str:
    """One series as an SVG element with its name, min/max value labels and the step range."""
    points = _downsample(points, MAX_POINTS)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    left, right, top, bottom = 48, 8, 22, 22
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (0.5 if x1 == x0 else (x - x0) / (x1 - x0)) * plot_w

    def sy(y: float) -> float:
        return top + (0.5 if y1 == y0 else 1 - (y - y0) / (y1 - y0)) * plot_h

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    label = html.escape(name)
    return (
        f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label}">'
        f'<text x="{left}" y="14" class="title">{label}</text>'
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>'
        f'<text x="{left - 4}" y="{top + 8}" class="axis" text-anchor="end">{_fmt(y1)}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" class="axis" text-anchor="end">{_fmt(y0)}</text>'
        f'<text x="{left}" y="{height - 6}" class="axis">{_fmt(x0)}</text>'
        f'<text x="{width - right}" y="{height - 6}" class="axis" text-anchor="end">{_fmt(x1)}</text>'
        f'<polyline points="{path}" class="line"/>'
        "</svg>"
    )


def metrics_svgs(path: Path) -> list[str]:
    """Every series of one metrics.jsonl as SVG plots, sorted by name."""
    return [line_plot_svg(name, points) for name, points in sorted(read_metrics(path).items())]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _downsample(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    if len(points) <= limit:
        return points
    stride = len(points) / limit
    picked = [points[int(i * stride)] for i in range(limit)]
    return picked[:-1] + [points[-1]]


def _fmt(value: float) -> str:
    return html.escape(f"{value:.4g}")
