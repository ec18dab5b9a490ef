"""The time-to-quality benchmark's sample sheet: a row per method, made from the checkpoint the summary picked.

Each row: ``--num`` samples of the picked checkpoint (seeds 0.., classes in turn for class-conditional methods),
then the cleaned textured GLB that `unflat export` wrote from the same checkpoint, drawn with moderngl from
``--azimuths`` (elevation 20, radius 3, fov 40: how unflat's synthetic data frames the unit sphere). A method
without a mesh (no surface at its export level) gets grey cells. Reads time_to_quality.json's ``best`` entries.

    python benchmarks/time_to_quality_sheet.py OUT/time_to_quality.json --glb-dir WORK/samples --out sheet.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def sample_cells(checkpoint: Path, num: int, device: str) -> list[np.ndarray]:
    """``num`` samples of a checkpoint as uint8 [H,W,3] images, classes in turn when the method has classes."""
    from unflat.export.images import to_uint8
    from unflat.runs import load_run

    method = load_run(checkpoint, device).method
    classes = method.info.num_classes  # the training data's classes (declared by every method's DatasetInfo)
    ids = torch.arange(num) % classes if classes > 1 else None
    with torch.no_grad():
        images = method.sample(num, 0, ids).images
    return list(to_uint8(images.float().cpu(), (-1.0, 1.0)))


def mesh_cells(glb: Path | None, azimuths: list[float], size: int) -> list[np.ndarray | None]:
    """Views of one GLB (textured or vertex-coloured) as uint8 [size,size,3]; Nones when there is no mesh."""
    if glb is None or not glb.is_file():
        return [None] * len(azimuths)
    import trimesh

    from unflat.cameras import Cameras
    from unflat.export.images import to_uint8
    from unflat.render.moderngl_backend import ModernGLRenderer

    mesh = trimesh.load(glb, force="mesh")
    if not len(mesh.faces):
        return [None] * len(azimuths)
    az = torch.tensor(azimuths)
    cams = Cameras.from_orbit(az, torch.full_like(az, 20.0), 3.0, 40.0)
    return list(to_uint8(ModernGLRenderer(size, supersample=2).render(mesh, cams).rgb, (0.0, 1.0)))


def row_label(method: str, best: dict) -> str:
    fid = best.get("FID (EfficientNet-Lite0)")
    nna = best.get("1-NNA")
    lines = [method, f"step {best['step']}, {best['checkpoint_s']:.0f} s"]
    lines.append(f"FID {fid:.1f}" if fid is not None else "FID -")
    lines.append(f"1-NNA {nna:.2f}" if nna is not None else "1-NNA -")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summary", type=Path, help="time_to_quality.json (with each method's `best`)")
    parser.add_argument("--glb-dir", type=Path, required=True, help="folder with <method>-glb/*.glb")
    parser.add_argument("--num", type=int, default=12)
    parser.add_argument("--azimuths", type=float, nargs="+", default=[30.0, 210.0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from unflat.export.sheet import make_sheet

    methods = json.loads(args.summary.read_text())["methods"]
    rows = []
    for name, entry in methods.items():
        best = entry.get("best")
        if not best:
            print(f"{name}: no checkpoint picked, left out of the sheet")
            continue
        glbs = sorted((args.glb_dir / f"{name}-glb").glob("*.glb"))
        cells = sample_cells(Path(best["checkpoint"]), args.num, args.device)
        views = mesh_cells(glbs[0] if glbs else None, args.azimuths, args.size * 2)
        rows.append((row_label(name, best), cells + views))
        print(f"{name}: {len(cells)} samples of step {best['step']}, GLB {glbs[0].name if glbs else 'none'}")
    header = [f"sample {i + 1}" for i in range(args.num)] + [f"GLB az {a:.0f}" for a in args.azimuths]
    make_sheet(args.out, rows, header, side=args.size)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
