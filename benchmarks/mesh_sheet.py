"""Samples beside their exported meshes: a before/after sheet of tri-plane mesh export (fixed vs auto iso-level).

Columns: samples (the latents `unflat export` uses, seeds from --seed). Rows, per camera (azimuth 30 and 210 deg,
elevation 20): the generator's render (super-resolved image), then for each --levels entry the exported mesh
(the method's ``mesh_from_planes``, vertex colours from the colour field) drawn with moderngl from the same
camera, each labelled with its level. Writes one PNG.

    python benchmarks/mesh_sheet.py RUN --levels 10 auto --num 6 --out docs/images/mesh-levels.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--levels", nargs="+", default=["10", "auto"])
    parser.add_argument("--num", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--class-id", type=int, default=None)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--azimuths", type=float, nargs="+", default=[30.0, 210.0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import imageio.v3 as iio

    from unflat.cameras import Cameras
    from unflat.export.images import make_grid, to_uint8, with_caption
    from unflat.runs import load_run
    from unflat.render.moderngl_backend import ModernGLRenderer
    from unflat.nets.superres import resize

    method = load_run(args.run, args.device).method
    cfg = method.cfg
    ids = None if args.class_id is None else torch.full((args.num,), args.class_id)
    z, ids, _ = method._latents(args.num, args.seed, ids)
    renderer = ModernGLRenderer(args.size, supersample=2)
    az = torch.tensor(args.azimuths)
    cams = Cameras.from_orbit(az, torch.full_like(az, 20.0), cfg.cameras.radius, cfg.cameras.fov)
    rows: list[list[np.ndarray]] = [[] for _ in range(len(az) * (1 + len(args.levels)))]
    for i in range(args.num):
        planes, ws = method.planes_for(z[i:i + 1], ids[i:i + 1])
        with torch.no_grad(), method.full_frame():
            render = method.G_ema.render(planes, ws, cams.to(method.device), method.neural_resolution(method.images_seen),
                                         perturb=False, noise_mode="const")
        images = to_uint8(resize(render.image.clamp(-1, 1), args.size), (-1.0, 1.0))
        for v in range(len(az)):
            rows[v * (1 + len(args.levels))].append(with_caption(images[v], "sample" if i == 0 else " "))
        for k, level in enumerate(args.levels):
            method.with_export_settings(level=level if level == "auto" else float(level))
            mesh = method.mesh_from_planes(planes)
            label = f"level {mesh.metadata['iso_level']:.3g}" + (" (auto)" if level == "auto" else "")
            if len(mesh.faces):
                pictures = to_uint8(renderer.render(mesh, cams).rgb, (0.0, 1.0))
            else:
                pictures = np.full((len(az), args.size, args.size, 3), 255, np.uint8)
            for v in range(len(az)):
                rows[v * (1 + len(args.levels)) + 1 + k].append(with_caption(pictures[v], label))
    cells = [cell for row in rows for cell in row]
    height = max(c.shape[0] for c in cells)
    cells = [np.pad(c, ((0, height - c.shape[0]), (0, 0), (0, 0)), constant_values=255) for c in cells]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, make_grid(np.stack(cells), nrow=args.num))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
