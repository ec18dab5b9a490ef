"""The time-to-quality benchmark's curves as one PNG (PIL only: the GPU machine has no matplotlib).

A panel per figure (metric against seconds of training), a line per method on the same axes, the issue's
target as a dashed line where it has one, and the point each method's sheet was made from ringed.
"""

from __future__ import annotations

from pathlib import Path

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75))


def _panel(draw, box: tuple[int, int, int, int], methods: dict[str, dict], label: str, lower: bool,
           target: float | None) -> None:
    x_left, y_top, x_right, y_bottom = box
    series = {m: [(p["checkpoint_s"], p[label], p is e.get("best") or _same(p, e.get("best")))
                  for p in e["points"] if p.get(label) is not None] for m, e in methods.items()}
    values = [v for pts in series.values() for _, v, _ in pts] + ([target] if target is not None else [])
    xs = [x for pts in series.values() for x, _, _ in pts]
    draw.text(((x_left + x_right) // 2 - 70, y_top - 18), f"{label} ({'lower' if lower else 'higher'} is better)",
              fill=(0, 0, 0))
    draw.rectangle(box, outline=(150, 150, 150))
    if not values:
        draw.text(((x_left + x_right) // 2 - 20, (y_top + y_bottom) // 2), "no data", fill=(0, 0, 0))
        return
    x1 = max(xs + [1.0])
    y0, y1 = min(values), max(values)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.06 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    fx = lambda x: x_left + x / x1 * (x_right - x_left)  # noqa: E731
    fy = lambda y: y_bottom - (y - y0) / (y1 - y0) * (y_bottom - y_top)  # noqa: E731
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        draw.line((x_left - 4, fy(y), x_left, fy(y)), fill=(120, 120, 120))
        draw.text((x_left - 44, fy(y) - 6), f"{y:.3g}", fill=(0, 0, 0))
        x = x1 * k / 4
        draw.line((fx(x), y_bottom, fx(x), y_bottom + 4), fill=(120, 120, 120))
        draw.text((fx(x) - 10, y_bottom + 6), f"{x:.0f}", fill=(0, 0, 0))
    draw.text(((x_left + x_right) // 2 - 80, y_bottom + 20), "seconds of training (wall clock)", fill=(0, 0, 0))
    if target is not None:
        for x in range(x_left, x_right, 10):
            draw.line((x, fy(target), min(x + 5, x_right), fy(target)), fill=(90, 90, 90))
        draw.text((x_right - 70, fy(target) - 13), f"target {target:g}", fill=(60, 60, 60))
    for i, (method, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(pts) > 1:
            draw.line([(fx(x), fy(y)) for x, y, _ in pts], fill=colour, width=2)
        for x, y, picked in pts:
            draw.ellipse((fx(x) - 3, fy(y) - 3, fx(x) + 3, fy(y) + 3), fill=colour)
            if picked:
                draw.ellipse((fx(x) - 7, fy(y) - 7, fx(x) + 7, fy(y) + 7), outline=colour, width=2)


def _same(point: dict, best: dict | None) -> bool:
    return bool(best) and point.get("checkpoint") == best.get("checkpoint")


def write_curves_png(methods: dict[str, dict], figures: list[tuple[str, bool]], path: Path,
                     targets: dict[str, float] | None = None, panel: tuple[int, int] = (330, 230)) -> Path:
    """methods: the summary's {method: {"points": [...], "best": point}}; figures: (label, lower is better)."""
    from PIL import Image, ImageDraw

    targets = targets or {}
    left, top, gap, legend = 60, 34, 70, 40
    width = left + len(figures) * (panel[0] + gap)
    height = top + panel[1] + 44 + legend
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for k, (label, lower) in enumerate(figures):
        x = left + k * (panel[0] + gap)
        _panel(draw, (x, top, x + panel[0], top + panel[1]), methods, label, lower, targets.get(label.split(" ")[0]))
    y = height - legend + 12
    x = left
    for i, method in enumerate(methods):
        colour = COLOURS[i % len(COLOURS)]
        draw.line((x, y + 6, x + 24, y + 6), fill=colour, width=3)
        draw.text((x + 30, y), method, fill=colour)
        x += 40 + 8 * len(method) + 20
    draw.text((x + 10, y), "ringed: the point the sample sheet and GLB come from; dashed: issue #22's target",
              fill=(60, 60, 60))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path
