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
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" class="axis" text-anchor="middle">step</text>'
        f'<polyline points="{path}" class="line"/>'
        "</svg>"
    )


def metrics_svgs(path: Path) -> list[str]:
    """Every series of one metrics.jsonl as SVG plots, sorted by name."""
    return [line_plot_svg(name, points) for name, points in sorted(read_metrics(path).items())]


DETAIL_PREFIXES = ("opengl_", "images_seen", "steps_per_s", "images_per_s", "gpu_peak", "lr_scale", "pretraining")
DETAIL_SUFFIXES = ("_ms",)
"""Series that describe how the run went (timings, counters), not what it learned: folded away by default."""

MEANINGS = (  # (name prefix, one line of what it means); the first match wins
    ("loss_D", "discriminator loss (lower: it tells real from generated more easily)"),
    ("loss_G", "generator's adversarial loss (lower: its samples fool the discriminator more)"),
    ("D_real", "discriminator's mean score on real images"),
    ("D_fake", "discriminator's mean score on generated images"),
    ("loss_R", "proxy renderer's loss: its images vs OpenGL's (L2 + DOM)"),
    ("R_l2", "proxy renderer's L2 to OpenGL renders (lower: a better imitation)"),
    ("R_dom", "discriminator output matching: D's view of proxy vs OpenGL renders"),
    ("voxel_mean", "mean occupancy of generated voxels (0: empty shapes, 1: full cubes)"),
    ("stage", "training stage (progressive: I novel view, II + same view, III + adversarial)"),
    ("loss_novel", "perceptual loss of the render at the other view (lower is better)"),
    ("loss_same", "perceptual loss of the render at the input view (lower is better)"),
    ("r1", "R1 gradient penalty of the discriminator"),
    ("eval/fid", "FID of samples vs the data on the feature backbone (lower is better)"),
    ("eval/kid", "KID of samples vs the data on the feature backbone (lower is better)"),
    ("held_out/", "backbone accuracy on shapes it never saw (higher is better)"),
    ("eval/held_out/", "backbone accuracy on shapes it never saw (higher is better)"),
    ("loss", "training loss (lower is better)"),
)


def is_detail(name: str) -> bool:
    return name.startswith(DETAIL_PREFIXES) or name.endswith(DETAIL_SUFFIXES)


def meaning(name: str) -> str:
    return next((text for prefix, text in MEANINGS if name.startswith(prefix)), "")


def metrics_figures(path: Path) -> tuple[list[str], list[str]]:
    """(what the run learned, how it ran): labelled plots of one metrics.jsonl, each an SVG with its meaning."""
    main, details = [], []
    for name, points in sorted(read_metrics(path).items()):
        text = meaning(name)
        figure = (f'<figure class="plot-card">{line_plot_svg(name, points)}'
                  + (f"<figcaption>{html.escape(text)}</figcaption>" if text else "") + "</figure>")
        (details if is_detail(name) else main).append(figure)
    return main, details


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
