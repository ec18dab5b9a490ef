"""Human-readable evaluation reports: a Markdown page with metric tables, sample grids and training
curves (small SVG line plots written here: no plotting library is needed).

``write_report(path, results, images, metrics_log)`` writes ``path`` (e.g. ``report.md``) and its
pictures into ``<stem>_files/`` next to it, linked relatively so the folder can be moved or viewed
on GitHub.
"""

from __future__ import annotations

import json
import math
import re
from html import escape
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

Series = list[tuple[int, float]]

MAX_CURVES = 24  # a run logs dozens of scalars; the report shows the first this many (losses and evaluations first)


# ---- training log ---------------------------------------------------------------------------------------
def read_metrics_log(path: str | Path) -> dict[str, Series]:
    """metrics.jsonl -> {scalar name: [(step, value), ...]} (finite numbers only, in file order)."""
    series: dict[str, Series] = {}
    path = Path(path)
    if not path.is_file():
        return series
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            continue
        for key, value in row.items():
            if key in ("step", "time") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                series.setdefault(key, []).append((row["step"], float(value)))
    return series


def curve_order(names: Iterable[str]) -> list[str]:
    """Evaluation scalars first, then losses, then the rest; alphabetical within each group."""

    def rank(name: str) -> tuple[int, str]:
        lower = name.lower()
        if lower.startswith(("eval/", "held_out/")):
            return 0, lower
        if "loss" in lower:
            return 1, lower
        if lower in ("steps_per_s", "images_per_s", "lr_scale"):
            return 3, lower
        return 2, lower

    return sorted(names, key=rank)


# ---- SVG line plots ---------------------------------------------------------------------------------------
def _nice_number(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


def svg_line_plot(points: Sequence[tuple[float, float]], title: str, width: int = 320, height: int = 180,
                  x_label: str = "step") -> str:
    """A self-contained SVG line plot of (x, y) points with min/max tick labels on both axes."""
    left, right, top, bottom = 56, 10, 24, 30
    xs = np.array([p[0] for p in points], dtype=np.float64)
    ys = np.array([p[1] for p in points], dtype=np.float64)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="10">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.1f}" y="14" text-anchor="middle" font-size="12">{escape(title)}</text>',
    ]
    plot_w, plot_h = width - left - right, height - top - bottom
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    if len(xs) == 0:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    x0, x1 = float(xs.min()), float(xs.max())
    y0, y1 = float(ys.min()), float(ys.max())
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.05 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    px = left + (xs - x0) / (x1 - x0) * plot_w
    py = top + (1 - (ys - y0) / (y1 - y0)) * plot_h
    coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
    if len(xs) == 1:
        parts.append(f'<circle cx="{px[0]:.1f}" cy="{py[0]:.1f}" r="2.5" fill="#1f77b4"/>')
    else:
        parts.append(f'<polyline points="{coords}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
    parts += [
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{_nice_number(y1)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">{_nice_number(y0)}</text>',
        f'<text x="{left}" y="{height - 16}" text-anchor="start">{_nice_number(x0)}</text>',
        f'<text x="{left + plot_w}" y="{height - 16}" text-anchor="end">{_nice_number(x1)}</text>',
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>',
        "</svg>",
    ]
    return "".join(parts)


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_") or "curve"


def upscale_nearest(images: np.ndarray, min_size: int = 64) -> np.ndarray:
    """uint8 [N,H,W,3] -> repeated pixels so that tiles are at least ``min_size`` high (tiny test and
    CPU-preset images stay visible in a report)."""
    factor = max(1, -(-min_size // max(1, images.shape[1])))
    return images if factor == 1 else images.repeat(factor, axis=1).repeat(factor, axis=2)


# ---- tables ------------------------------------------------------------------------------------------------
def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _nice_number(value) if math.isfinite(value) else str(value)
    return str(value)


def _summary(value) -> str:
    """A metric entry as text: numbers as they are, {"mean", "values"} summaries as their mean."""
    if isinstance(value, Mapping) and "mean" in value:
        return _format(value["mean"])
    return _format(value)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


DISTRIBUTION_ROWS = (
    ("FID", "fid", "lower is better"),
    ("KID", "kid_mean", "lower is better; +- std over subsets"),
    ("IS", "inception_score_mean", "higher is better; +- std over splits"),
    ("precision", "precision", "fraction of samples inside the data manifold"),
    ("recall", "recall", "fraction of data inside the samples' manifold"),
)


def distribution_section(report: Mapping) -> list[str]:
    lines = [f"Backbone: **{report['backbone_name']}** (weights `{report['weights_hash']}`, {report['backbone_kind']}). "
             f"Numbers are {report['label']}.", "",
             f"{report['num_fake']} generated images against {report['num_real']} dataset images.", ""]
    rows = []
    for title, key, note in DISTRIBUTION_ROWS:
        value = report.get(key)
        if value is None:
            continue
        text = _format(value)
        std_key = {"kid_mean": "kid_std", "inception_score_mean": "inception_score_std"}.get(key)
        if std_key and report.get(std_key) is not None:
            text += f" +- {_format(report[std_key])}"
        rows.append((title, text, note))
    return lines + _table(rows, ("metric", "value", "note"))


def shapes_section(report: Mapping) -> list[str]:
    rows = [
        ("COV", _format(report["coverage"]), "higher is better"),
        ("MMD", _format(report["mmd"]), "lower is better"),
        ("1-NNA", _format(report["one_nna"]), "0.5 is ideal"),
    ]
    note = (f"{report['num_generated']} generated meshes against {report['num_reference']} ground-truth meshes, "
            f"{report['points_per_shape']} surface points each, Chamfer variant `{report['chamfer_variant']}`.")
    return [note, ""] + _table(rows, ("metric", "value", "note"))


RECONSTRUCTION_ROWS = (
    ("MSE", "mse"), ("PSNR (dB)", "psnr"), ("SSIM", "ssim"), ("perceptual", "lpips"), ("silhouette IoU", "silhouette_iou"),
    ("depth accuracy (MSE of normalised depth)", "depth_accuracy"),
    ("depth abs-rel (scale-and-shift aligned)", "depth_abs_rel"), ("depth RMSE (scale-and-shift aligned)", "depth_rmse"),
    ("Chamfer", "chamfer"), ("volume IoU", "volume_iou"),
    ("FID (renders vs targets)", "fid"), ("KID (renders vs targets)", "kid"),
)


def reconstruction_section(columns: Mapping[str, Mapping]) -> list[str]:
    """columns: {"same view": ReconstructionEvaluation dict, "novel view": ...}."""
    names = list(columns)
    rows = []
    for title, key in RECONSTRUCTION_ROWS:
        values = [columns[n].get(key) for n in names]
        if all(v is None for v in values):
            continue
        if key == "lpips":
            backbone = next((columns[n].get("perceptual_backbone") for n in names if columns[n].get("perceptual_backbone")), None)
            title = f"perceptual: {backbone}" if backbone else title
        if key == "chamfer":
            variant = next((columns[n].get("chamfer_variant") for n in names if columns[n].get("chamfer_variant")), None)
            title = f"Chamfer ({variant})" if variant else title
        rows.append((title, *(_summary(v) for v in values)))
    for n in names:
        for threshold, summary in (columns[n].get("fscore") or {}).items():
            rows.append((f"F-score@{threshold}", *(_summary(summary) if m == n else "-" for m in names)))
    return _table(rows, ("metric", *names))


# ---- the page ------------------------------------------------------------------------------------------
def write_report(
    path: str | Path,
    results: Mapping,
    images: Mapping[str, np.ndarray] | None = None,
    metrics_log: Mapping[str, Series] | None = None,
) -> Path:
    """Write a Markdown report.

    results: the metrics.json dictionary (see ``unflat.evaluate``). images: {caption: uint8 grid
    [H,W,3]} saved as PNGs. metrics_log: training curves from ``read_metrics_log``.
    Returns the report path; pictures go to ``<stem>_files/``.
    """
    from PIL import Image

    path = Path(path)
    assets = path.with_name(path.stem + "_files")
    assets.mkdir(parents=True, exist_ok=True)
    run, data = results.get("run", {}), results.get("data", {})
    lines = [f"# Evaluation: {run.get('method', '?')} at step {run.get('step', '?')}", ""]
    lines += [f"- run: `{run.get('dir', '?')}`", f"- data: `{data.get('dir', '?')}` ({data.get('num_images', '?')} images, "
              f"{data.get('resolution', '?')} px, images sha256 `{str(data.get('images_sha256'))[:16]}`)",
              f"- written by unflat {results.get('unflat_version', '?')} on {results.get('created', '?')}", ""]
    backbone = results.get("backbone")
    if backbone:
        lines += ["## Feature backbone", "", f"**{backbone['name']}** (weights `{backbone['weights_hash']}`, {backbone['kind']}), "
                  f"from `{backbone.get('path', '-')}`.", ""]
        accuracy = backbone.get("held_out_accuracy")
        if accuracy:
            lines += [f"Held-out accuracy on {accuracy.get('num_held_out')} images of unseen shapes: category "
                      f"{_format(accuracy.get('category_accuracy'))}, azimuth bin {_format(accuracy.get('azimuth_accuracy'))} "
                      f"(within one bin {_format(accuracy.get('azimuth_within_one_bin'))}), elevation bin "
                      f"{_format(accuracy.get('elevation_accuracy'))}.", ""]
    if results.get("images"):
        lines += ["## Image distribution", ""] + distribution_section(results["images"])
    if results.get("shapes"):
        lines += ["## Generated shapes vs ground truth", ""] + shapes_section(results["shapes"])
    views = {name.replace("_", " "): results[key] for key, name in (("same_view", "same view"), ("novel_view", "novel view"))
             if results.get(key)}
    if views:
        lines += ["## Reconstruction", "", "Each held-out shape is reconstructed from one view and rendered at that view "
                  "(same view) and at another view of the shape (novel view).", ""] + reconstruction_section(views)
    inversion = results.get("inversion")
    if inversion:
        lines += ["## Inversion of held-back images", "", f"{inversion['description']} {inversion['num_images']} images "
                  f"({inversion['num_novel_views']} novel views), PTI features: {inversion['feature_space']}, class accuracy "
                  f"{_format(inversion.get('class_accuracy'))}.", ""] + reconstruction_section(inversion["views"])
    if results.get("skipped"):
        lines += ["## Not computed", ""] + [f"- {name}: {why}" for name, why in results["skipped"].items()] + [""]
    if results.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in results["notes"]] + [""]
    for caption, grid in (images or {}).items():
        name = _file_name(caption.split("(")[0].strip().lower()) + ".png"
        Image.fromarray(np.ascontiguousarray(grid)).save(assets / name)
        lines += [f"## {caption}", "", f"![{caption}]({assets.name}/{name})", ""]
    if metrics_log:
        names = curve_order(metrics_log)
        lines += ["## Training curves", "", f"From the run's metrics.jsonl ({len(names)} scalars"
                  + (f"; the first {MAX_CURVES} shown" if len(names) > MAX_CURVES else "") + ").", ""]
        for key in names[:MAX_CURVES]:
            name = "curve-" + _file_name(key) + ".svg"
            (assets / name).write_text(svg_line_plot(metrics_log[key], key))
            lines.append(f"![{key}]({assets.name}/{name})")
        lines.append("")
    path.write_text("\n".join(lines))
    return path
