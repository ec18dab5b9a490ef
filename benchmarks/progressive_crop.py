"""Does `unflat reconstruct`'s crop cost a progressive model its held-back accuracy? `--crop object` vs `--crop none`.

The held-back renders of `benchmarks/progressive_quality.sh` (one input view per shape, with its mask) go
through the real CLI path (`unflat reconstruct RUN IMAGES --masks MASKS --crop C --no-turntable`) once per crop
mode; each written GLB is compared by Chamfer-L2 with the ground-truth meshes of its category: top-1
specificity (its own ground truth the closest), its own Chamfer-L2 and F-score@0.05 (unit box, 4,096 points).
No feature network: geometry only. Prints one JSON line per mode; --out writes them all.

    PYTHONPATH=src python benchmarks/progressive_crop.py zoo:progressive-6cat-128 --heldout data/held \\
        --work runs/progressive-crop --out benchmarks/results/progressive-crop-cpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name  # noqa: E402
from progressive_quality import specificity_block, write_inputs  # noqa: E402


def main() -> int:
    import torch
    import trimesh

    from unflat.metrics.shapes import sample_points

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a progressive run directory or zoo:NAME")
    parser.add_argument("--heldout", type=Path, required=True, help="a multi-view dataset with meshes (dataset synth)")
    parser.add_argument("--work", type=Path, default=Path("runs/progressive-crop"))
    parser.add_argument("--crops", nargs="+", default=["object", "none"], choices=["object", "none"])
    parser.add_argument("--num-points", type=int, default=4096)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    a = parser.parse_args()

    write_inputs(a.heldout, a.work / "inputs")
    rows = json.loads((a.work / "inputs" / "inputs.json").read_text())["inputs"]
    categories = [r["category"] for r in rows]
    gt = torch.stack([sample_points(trimesh.load(r["mesh"], force="mesh"), a.num_points, seed=10_000 + i)
                      for i, r in enumerate(rows)])
    images = [str(a.work / "inputs" / "images" / f"{r['name']}.png") for r in rows]
    masks = [str(a.work / "inputs" / "masks" / f"{r['name']}.png") for r in rows]
    results = []
    for crop in a.crops:
        out = a.work / f"recon-{crop}"
        command = [sys.executable, "-m", "unflat", "reconstruct", a.run, *images, "--masks", *masks, "--out", str(out),
                   "--crop", crop, "--no-turntable", "--device", a.device]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        meshes = [trimesh.load(out / f"{r['name']}.glb", force="mesh") for r in rows]
        block = specificity_block(meshes, gt, categories, a.num_points, a.device)
        result = {"what": "progressive reconstruct --crop on held-back renders", "run": a.run, "heldout": str(a.heldout),
                  "crop": crop, "shapes": len(rows), "top1_specificity": block["overall"], "chance": block["chance"],
                  "per_category": block["per_category"], "own_chamfer_l2": block["own_chamfer_mean"],
                  "own_fscore@0.05": block["own_fscore@0.05_mean"], "feature_network": "none (geometry)",
                  "reconstruct_seconds": round(seconds, 1), "device": device_name(torch.device(a.device)),
                  "command": f"unflat reconstruct {a.run} <{len(rows)} held-back inputs> --masks <their masks> "
                             f"--crop {crop} --no-turntable --device {a.device}"}
        print(json.dumps(result), flush=True)
        results.append(result)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
