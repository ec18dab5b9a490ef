"""summary.json of one ablation arm, and the markdown table of all arms (used by ablation_mvtriplane.sh and
ablation_tdgp.sh).

  python benchmarks/ablation_summary.py summary ARM_DIR --method M --arm A --steps-target N --train-s T --eval-s E
  python benchmarks/ablation_summary.py report ROOT --method M --arms a b c [--title TEXT] [--labels a=TEXT ...]

An arm directory holds run/ (the training run), metrics.json (`unflat evaluate`: FID/KID, COV/MMD/1-NNA),
optionally inversion.json (`unflat evaluate --metrics inversion`), bench.json (a benchmark's JSON line) and
commands (the exact command lines, one a line). Missing parts are reported as missing, never filled in.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

INVERSION_KEYS = ("psnr", "ssim", "lpips", "silhouette_iou", "depth_accuracy", "depth_abs_rel", "depth_rmse")


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def steps_reached(run: Path) -> int | None:
    try:
        from unflat.engine.checkpoint import load_checkpoint

        return int(load_checkpoint(run)["step"])
    except Exception:  # no checkpoint (training failed before its first one)
        return None


def training_rate(run: Path) -> float | None:
    """Median steps/s over the run's logged intervals after the first (which includes start-up)."""
    rows = []
    try:
        for line in (run / "metrics.jsonl").read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("steps_per_s"), (int, float)):
                rows.append(float(row["steps_per_s"]))
    except OSError:
        return None
    rows = rows[1:] or rows
    return statistics.median(rows) if rows else None


def generator_metrics(path: Path) -> dict | None:
    m = _json(path)
    if m is None:
        return None
    images, shapes = m.get("images") or {}, m.get("shapes") or {}
    return {"step": m["run"]["step"], "fid": images.get("fid"), "kid": images.get("kid_mean"), "kid_std": images.get("kid_std"),
            "backbone": images.get("backbone_name"), "backbone_weights": images.get("weights_hash"),
            "num_samples": m["settings"].get("num_samples"), "coverage": shapes.get("coverage"), "mmd": shapes.get("mmd"),
            "one_nna": shapes.get("one_nna"), "chamfer_variant": shapes.get("chamfer_variant"),
            "num_shapes": m["settings"].get("num_shapes"), "skipped": m.get("skipped"), "file": str(path),
            # `unflat evaluate` writes after each phase: a file with complete=false was cut short by a time limit
            "complete": m.get("complete", True), "timings_s": m.get("timings_s")}


def inversion_metrics(path: Path) -> dict | None:
    m = _json(path)
    if m is None or not m.get("inversion"):
        return None
    inv = m["inversion"]
    views = {name: {k: view[k]["mean"] for k in INVERSION_KEYS if isinstance(view.get(k), dict)}
             for name, view in inv["views"].items()}
    perceptual = next((v.get("perceptual_backbone") for v in inv["views"].values() if v.get("perceptual_backbone")), None)
    return {"step": m["run"]["step"], "num_images": inv["num_images"], "num_novel_views": inv["num_novel_views"],
            "stopped_early": inv["stopped_early"], "seconds": inv["seconds"], "feature_space": inv["feature_space"],
            "perceptual": perceptual, "class_accuracy": inv.get("class_accuracy"), "settings": inv["settings"],
            "views": views, "file": str(path)}


def summary(args: argparse.Namespace) -> None:
    arm_dir = Path(args.dir)
    bench = None
    if (arm_dir / "bench.json").is_file():
        bench = _json(arm_dir / "bench.json")
    out = {"method": args.method, "arm": args.arm, "steps_target": args.steps_target,
           "steps_reached": steps_reached(arm_dir / "run"), "train_steps_per_s": training_rate(arm_dir / "run"),
           "train_wall_s": args.train_s, "eval_wall_s": args.eval_s,
           "metrics": generator_metrics(arm_dir / "metrics.json"), "inversion": inversion_metrics(arm_dir / "inversion.json"),
           "bench": bench, "commands": (arm_dir / "commands").read_text().splitlines() if (arm_dir / "commands").is_file() else []}
    (arm_dir / "summary.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"{args.arm}: step {out['steps_reached']}/{args.steps_target}, train {args.train_s} s, evaluate {args.eval_s} s "
          f"-> {arm_dir / 'summary.json'}")


def _f(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def seeded_summary(loaded: dict[str, dict | None]) -> None:
    """For arms run at several seeds (NAME-sN, and NAME at the seed its training command had): FID per seed, the mean
    and how often each arm had the best FID of its seed."""
    import re
    from collections import defaultdict

    if not any(re.fullmatch(r".+-s\d+", arm) for arm in loaded):
        return
    fid: dict[str, dict[int, float]] = defaultdict(dict)
    for arm, s in loaded.items():
        match = re.fullmatch(r"(.+)-s(\d+)", arm)
        trained = next((c for c in (s or {}).get("commands", []) if " train " in c and "--seed" in c), "")
        recorded = re.search(r"--seed (\d+)", trained)  # the seed the arm's training command was given
        name = match.group(1) if match else arm
        seed = int(recorded.group(1)) if recorded else (int(match.group(2)) if match else 0)
        value = ((s or {}).get("metrics") or {}).get("fid")
        if value is not None and (s or {}).get("steps_reached") == (s or {}).get("steps_target"):
            fid[name][seed] = value
    seeds = sorted({seed for per_seed in fid.values() for seed in per_seed})
    names = sorted(fid)
    wins = {name: 0 for name in names}
    contested = 0  # seeds where more than one arm has a figure
    for seed in seeds:
        present = {name: fid[name][seed] for name in names if seed in fid[name]}
        if len(present) > 1:
            wins[min(present, key=present.get)] += 1
            contested += 1
    print("\n#### FID per seed (lower is better; each seed's arms share data, backbone and proxy)\n")
    print("| arm | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean | best in |")
    print("|---|" + "---|" * (len(seeds) + 2))
    for name in names:
        values = [fid[name].get(seed) for seed in seeds]
        done = [v for v in values if v is not None]
        mean = sum(done) / len(done) if done else None
        print(f"| {name} | " + " | ".join(_f(v) for v in values) + f" | {_f(mean)} | {wins[name]} of {contested} seeds |")


def report(args: argparse.Namespace) -> None:
    root = Path(args.dir)
    labels = dict(item.split("=", 1) for item in args.labels)
    loaded = {arm: _json(root / arm / "summary.json") for arm in args.arms}
    print(f"### {args.title or args.method + ': ablation at equal budget'}\n")
    print("| arm | steps reached | FID (domain) | KID (domain) | COV | MMD | 1-NNA | train steps/s | train s | eval s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    backbone, targets = None, set()
    for arm, s in loaded.items():
        label = labels.get(arm, arm)
        if s is None:
            print(f"| {label} | not run | | | | | | | | |")
            continue
        if s.get("steps_target") == 0:  # a timing arm: its own section below
            if s.get("bench") is None:
                print(f"| {label} | timing failed (see {root / arm / 'bench.log'}) | | | | | | | | |")
            continue
        m = s.get("metrics") or {}
        targets.add(s["steps_target"])
        step = f"{s['steps_reached']}/{s['steps_target']}" + ("" if s["steps_reached"] == s["steps_target"] else " (short)")
        backbone = backbone or (f"{m['backbone']} (weights {m['backbone_weights']})" if m.get("backbone") else None)
        cells = [label, step, _f(m.get("fid")), _f(m.get("kid")), _f(m.get("coverage"), 3), _f(m.get("mmd"), 3),
                 _f(m.get("one_nna"), 3), _f(s.get("train_steps_per_s"), 3), _f(s["train_wall_s"]),
                 _f(s["eval_wall_s"]) + ("" if m.get("complete", True) else " (cut short)")]
        print("| " + " | ".join(cells) + " |")
    print(f"\nFID/KID on {backbone or 'the domain backbone'}; COV/MMD/1-NNA: Chamfer (L2 squared) of generated vs "
          "ground-truth meshes. An arm marked (short) stopped before the target step (timeout): not equal budget; "
          "an evaluation marked (cut short) hit its time limit, and '-' cells are the metrics it had not reached.")
    seeded_summary(loaded)
    inversions = [(arm, s["inversion"]) for arm, s in loaded.items() if s and s.get("inversion")]
    for arm, inv in inversions:
        print(f"\n#### {labels.get(arm, arm)}: PTI inversion of {inv['num_images']} held-back images "
              f"({inv['num_novel_views']} novel views; PTI {inv['settings']['steps_w']}+{inv['settings']['steps_g']} steps, "
              f"camera {inv['settings']['camera']}; {inv['seconds']:.0f} s"
              + ("; stopped early by the time limit" if inv["stopped_early"] else "") + ")\n")
        print("| view | PSNR | SSIM | perceptual* | silhouette IoU | depth accuracy (paper) | depth abs-rel | depth RMSE |")
        print("|---|---|---|---|---|---|---|---|")
        for view, v in inv["views"].items():
            print("| " + " | ".join([view] + [_f(v.get(k), 3 if k != "depth_accuracy" else 4) for k in
                                              ("psnr", "ssim", "lpips", "silhouette_iou", "depth_accuracy",
                                               "depth_abs_rel", "depth_rmse")]) + " |")
        print(f"\n*{inv['perceptual'] or 'no perceptual network'}; PTI loss features: {inv['feature_space']}; "
              f"class accuracy of the initialisation: {_f(inv['class_accuracy'], 3)}.")
    for arm, s in loaded.items():
        bench = (s or {}).get("bench")
        if bench:
            print(f"\n#### {labels.get(arm, arm)}: `{bench.get('command', '?')}` on {bench.get('device', '?')}\n")
            print(bench.get("figure", json.dumps(bench)[:500]))
            if isinstance(bench.get("overhead_percent"), dict):
                print("\noverhead (% of step time): " + ", ".join(f"{k} {v:+.1f}%" for k, v in bench["overhead_percent"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("summary")
    s.add_argument("dir")
    s.add_argument("--method", required=True)
    s.add_argument("--arm", required=True)
    s.add_argument("--steps-target", type=int, required=True)
    s.add_argument("--train-s", type=int, default=0)
    s.add_argument("--eval-s", type=int, default=0)
    r = sub.add_parser("report")
    r.add_argument("dir")
    r.add_argument("--method", required=True)
    r.add_argument("--arms", nargs="+", required=True)
    r.add_argument("--title", default="")
    r.add_argument("--labels", nargs="*", default=[])
    args = parser.parse_args()
    summary(args) if args.what == "summary" else report(args)


if __name__ == "__main__":
    main()
