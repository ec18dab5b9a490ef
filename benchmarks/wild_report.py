"""The wild-vs-clean ablation's figures as one JSON and the 3dgp ablation table (issue #23).

  python benchmarks/wild_report.py ABL_DIR --arms mv-clean mv-wild tdgp-clean tdgp-wild tdgp-wild-noadaptor-s0 ... \\
      --out wild.json

Per arm: method, data, variant, seed, steps reached, training seconds, COV/MMD/1-NNA of foreground meshes against
the ground-truth meshes, FID/KID (EfficientNet-Lite0 ImageNet features) against the arm's own training data. Then
the wild/clean MMD ratio per method and, for 3dgp on the wild data, each variant's mean and spread over seeds
(``tdgp-wild`` is the full model at seed 0). The markdown goes to stdout. Missing figures stay missing (null).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
from pathlib import Path

def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def parse_arm(arm: str) -> dict:
    """``mv-clean`` -> mvtriplane/clean/full/0; ``tdgp-wild-nodistill-s1`` -> 3dgp/wild/nodistill/1;
    ``mv-wild-noblob`` -> mvtriplane/wild/noblob/0 (without the density blob; ``bg8``: 8 background octaves)."""
    match = re.fullmatch(r"(mv|tdgp)-(clean|wild)(?:-(noblob|bg8)|-(\w+)-s(\d+))?", arm)
    if not match:
        raise SystemExit(f"unknown arm name {arm!r} (expected mv|tdgp-clean|wild[-noblob|-bg8|-VARIANT-sSEED])")
    prefix, data, noblob, variant, seed = match.groups()
    return {"method": "mvtriplane" if prefix == "mv" else "3dgp", "data": data, "variant": noblob or variant or "full",
            "seed": int(seed or 0)}


def arm_figures(root: Path, arm: str) -> dict:
    """The arm's figures from its summary.json (benchmarks/ablation_summary.py: evaluate's metrics, flattened)."""
    summary = _json(root / arm / "summary.json")
    m = summary.get("metrics") or {}
    errors = [line.split("error:", 1)[1].strip() for line in _text(root / arm / "eval.log").splitlines() if "error:" in line]
    return {"arm": arm, **parse_arm(arm), "steps": summary.get("steps_reached"), "train_seconds": summary.get("train_wall_s"),
            "eval_error": errors[-1] if errors else None,
            "cov": m.get("coverage"), "mmd": m.get("mmd"), "1nna": m.get("one_nna"), "fid": m.get("fid"), "kid": m.get("kid"),
            "feature_network": m.get("backbone"), "num_samples": m.get("num_samples"), "num_shapes": m.get("num_shapes")}


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--arms", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", default="0")
    args = parser.parse_args()
    rows = [arm_figures(args.root, arm) for arm in args.arms]

    ratios = {}
    for method in ("mvtriplane", "3dgp"):
        pick = {r["data"]: r for r in rows if r["method"] == method and r["variant"] == "full" and r["seed"] == 0}
        clean, wild = (pick.get(k, {}).get("mmd") for k in ("clean", "wild"))
        ratios[method] = {"mmd_clean": clean, "mmd_wild": wild,
                          "wild_over_clean": wild / clean if clean and wild is not None else None}
        noblob_arm = next((r for r in rows if r["method"] == method and r["variant"] == "noblob"), None)
        if noblob_arm is not None:
            noblob = noblob_arm.get("mmd")
            ratios[f"{method} without the density blob"] = {
                "mmd_clean": clean, "mmd_wild": noblob,
                "wild_over_clean": noblob / clean if clean and noblob is not None else None}
    variants: dict[str, dict] = {}
    for r in rows:
        if r["method"] == "3dgp" and r["data"] == "wild":
            variants.setdefault(r["variant"], {"seeds": []})["seeds"].append(r)
    for name, v in variants.items():
        for key in ("fid", "mmd", "cov", "1nna"):
            values = [s[key] for s in v["seeds"] if isinstance(s[key], (int, float))]
            v[key] = {"mean": statistics.fmean(values) if values else None,
                      "spread": (max(values) - min(values)) if len(values) > 1 else None, "n": len(values)}
        v["seeds"] = [s["seed"] for s in v["seeds"]]

    print("\n#### Every arm (foreground meshes; FID against the arm's own training data)\n")
    print("| arm | steps | train s | COV | MMD | 1-NNA | FID | evaluation |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {_f(r['steps'])} | {_f(r['train_seconds'])} | {_f(r['cov'], 3)} | {_f(r['mmd'])} | "
              f"{_f(r['1nna'], 3)} | {_f(r['fid'], 1)} | {r['eval_error'] or 'ok'} |")
    print("\n#### Wild / clean MMD at equal budget (target <= 1.3)\n\n| method | clean | wild | ratio |\n|---|---|---|---|")
    for method, r in ratios.items():
        print(f"| {method} | {_f(r['mmd_clean'])} | {_f(r['mmd_wild'])} | {_f(r['wild_over_clean'], 2)} |")
    print("\n#### 3dgp on the wild data: mean over seeds (spread = max - min)\n")
    print("| variant | seeds | FID | MMD | COV | 1-NNA |\n|---|---|---|---|---|---|")
    for name, v in variants.items():
        cell = lambda k, d=4: f"{_f(v[k]['mean'], d)} ± {_f(v[k]['spread'], d)}"  # noqa: E731
        print(f"| {name} | {v['seeds']} | {cell('fid', 1)} | {cell('mmd')} | {cell('cov', 3)} | {cell('1nna', 3)} |")

    try:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        git = None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "what": "wild vs clean data at equal budget, and 3dgp's ablation on wild data (issue 23)",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git": git,
        "smoke": args.smoke == "1", "arms": rows, "wild_over_clean_mmd": ratios, "tdgp_wild_variants": variants,
        "commands": {a: (args.root / a / "commands").read_text().splitlines()
                     for a in args.arms if (args.root / a / "commands").is_file()},
    }, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
