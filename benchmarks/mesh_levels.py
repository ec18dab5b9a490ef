"""Do a tri-plane run's exported meshes cover what its renders show? Fixed iso-levels against "auto".

For each level (e.g. ``10 auto``) and each of ``--num`` samples (the seeds `unflat export` uses), the exported mesh
(the method's own ``mesh_from_planes``, the path of `unflat export`, `generate` and `evaluate`) is rasterised from
``--views`` cameras of the training distribution drawn with another seed than the ones "auto" chose its level
from, and its silhouette is compared with the sample's volume-rendered opacity >= 0.5 from the same cameras (IoU; on a
white background only where the render is not white: ``TriplaneGAN.visible_opacity``).
Prints one JSON line per level: mean/median IoU, faces, components, seconds per mesh, the levels chosen.

    python benchmarks/mesh_levels.py RUN --levels 10 auto --num 16 [--out levels.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def silhouette_iou(method, planes: torch.Tensor, mesh, views: int, resolution: int, seed: int) -> float:
    from unflat.render.rasterizer import clip_from_cameras, rasterize

    with method.full_frame():
        cams = method.sample_cameras(views, 1, torch.Generator().manual_seed(seed))
    origins, dirs = cams.rays(resolution, resolution)
    alpha = method.visible_opacity(planes, origins, dirs) >= 0.5  # [V,N]
    if len(mesh.faces) == 0:
        return 0.0
    verts = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32)[None].expand(views, -1, -1)
    frags = rasterize(clip_from_cameras(verts, cams), torch.as_tensor(np.asarray(mesh.faces)), resolution)
    hit = (frags.face_id >= 0).reshape(views, -1)
    return float((hit & alpha).sum() / (hit | alpha).sum().clamp_min(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--levels", nargs="+", default=["10", "auto"])
    parser.add_argument("--num", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from unflat.runs import load_run

    method = load_run(args.run, args.device).method
    z, ids, _ = method._latents(args.num, args.seed, None)
    rows = []
    for level in args.levels:
        method.with_export_settings(level=level if level == "auto" else float(level))
        ious, faces, parts, levels, seconds = [], [], [], [], []
        for i in range(args.num):
            planes, _ = method.planes_for(z[i:i + 1], ids[i:i + 1])
            start = time.perf_counter()
            mesh = method.mesh_from_planes(planes)
            seconds.append(time.perf_counter() - start)
            ious.append(silhouette_iou(method, planes, mesh, args.views, args.resolution, 10_000 + args.seed + i))
            faces.append(len(mesh.faces))
            parts.append(len(mesh.split(only_watertight=False)) if len(mesh.faces) else 0)
            levels.append(float(mesh.metadata["iso_level"]))
        row = {"run": str(args.run), "level": level, "num": args.num, "views": args.views,
               "silhouette_iou_mean": round(statistics.mean(ious), 4),
               "silhouette_iou_median": round(statistics.median(ious), 4),
               "faces_median": int(statistics.median(faces)), "components_mean": round(statistics.mean(parts), 2),
               "seconds_per_mesh": round(statistics.mean(seconds), 3),
               "levels_chosen": [round(v, 3) for v in levels], "ious": [round(v, 3) for v in ious]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    main()
