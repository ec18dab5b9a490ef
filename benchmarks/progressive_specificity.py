"""Does a `progressive` run's reconstruction follow its input? Top-1 specificity on held-back shapes.

For each held-back shape (one input view, chosen as `unflat evaluate` chooses them: same seed, same
pairs), its reconstruction is compared by Chamfer-L2 with the ground-truth meshes of every held-back
shape of its category; top-1 specificity = the fraction whose own ground truth is the closest (chance:
1 / shapes per category). Also the mean colour distance between the input's object pixels and the
reconstruction's same-view render (is the input's colour kept?). Prints one JSON line; --out writes it.

    PYTHONPATH=src python benchmarks/progressive_specificity.py runs/recon --data data/held --num-shapes 72 \\
        --seed 1000 --out benchmarks/results/progressive-specificity.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from unflat.data.format import open_dataset
    from unflat.runs import load_run
    from unflat.metrics.shapes import pairwise_chamfer, sample_points

    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--num-shapes", type=int, default=72)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    method = load_run(args.run, device).method
    views = method.evaluate_views(args.data, args.num_shapes, args.seed)
    if views["gt_meshes"] is None:
        raise SystemExit(f"{args.data} has no ground-truth meshes")
    dataset = open_dataset(args.data)
    classes = np.asarray(dataset.labels)[np.asarray(views["input_index"])]
    pred = torch.stack([sample_points(m, args.points, seed=0) for m in views["pred_meshes"]]).to(device)
    gt = torch.stack([sample_points(m, args.points, seed=1) for m in views["gt_meshes"]]).to(device)
    per_class, hits = {}, []
    for c in np.unique(classes):
        idx = np.nonzero(classes == c)[0]
        d = pairwise_chamfer(pred[idx], gt[idx]).cpu().numpy()
        ok = d.argmin(1) == np.arange(len(idx))
        hits += ok.tolist()
        name = dataset.info.class_names[int(c)] if int(c) < len(dataset.info.class_names) else str(int(c))
        per_class[name] = {"top1": float(ok.mean()), "shapes": int(len(idx)), "chance": 1 / len(idx)}
    same = views["same"]
    mask = same["target_masks"] > 0.5
    colour = ((same["pred_images"] - same["target_images"]).abs().mean(1, keepdim=True)[mask]).mean()
    result = {"run": str(args.run), "data": str(args.data), "num_shapes": len(hits), "seed": args.seed,
              "top1_specificity": float(np.mean(hits)), "per_class": per_class,
              "same_view_object_colour_l1": float(colour),
              "perceptual_features_trained": getattr(method, "perceptual_features_used", None),
              "arch": getattr(method.cfg, "arch", "legacy")}
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
