"""Mesh extraction from a tri-plane generator: density grid (resolution^3 queries of the planes + decoder)
-> marching cubes -> mesh with vertex colours, each part timed (goal at 256^3 on the GPU: < 1 s in all).

  python benchmarks/bench_mesh_extraction.py --eg3d --resolution 256          # H100
  python benchmarks/bench_mesh_extraction.py --preset tiny --resolution 32 --device cpu

The generator is freshly initialised (no trained weights travel to the GPU machine); its density field is
cut at its mean, which gives a large, irregular surface - a much harder case for marching cubes than a
trained object. So marching cubes is also timed on a sphere of radius 0.8 (an object-sized surface) on the
same grid. Marching cubes runs with every implementation ``unflat.geometry.marching_cubes`` offers: the
vectorised PyTorch one on the grid's device when present (best of --repeats), and scikit-image's on the
CPU (one call).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_triplane import PRESETS, eg3d_settings  # noqa: E402
from common import device_name, report, sync  # noqa: E402

from unflat.config import replace_fields
from unflat.geometry import marching_cubes as mc  # noqa: E402
from unflat.methods.triplane_gan import TriplaneGenerator  # noqa: E402


def timed_call(fn, device: torch.device, repeats: int, warmup: bool = True):
    """(result of the last call, best seconds over ``repeats`` calls, after one warm-up call if asked)."""
    result = fn() if warmup else None
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--eg3d", action="store_true", help="EG3D-equivalent generator sizes")
    parser.add_argument("--resolution", type=int, default=256, help="grid samples per axis")
    parser.add_argument("--chunk", type=int, default=1 << 21, help="points per density query")
    parser.add_argument("--fused-sampling", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    device = torch.device(args.device)
    cfg = PRESETS[args.preset]()
    if args.eg3d:
        cfg = eg3d_settings(cfg)
    cfg = replace_fields(cfg, {"rendering.fused_sampling": args.fused_sampling})
    torch.manual_seed(0)
    G = TriplaneGenerator.from_config(cfg, 0, cfg.rendering.output_resolution or 128).to(device).eval()
    half = cfg.generator.box_size / 2
    with torch.no_grad():
        ws = G.map(torch.randn(1, cfg.generator.z_dim, device=device), G.class_onehot(None, 1, device))
        planes = G.planes(ws, "const")

    grid, query_s = timed_call(lambda: G.density_grid(planes, args.resolution, half, args.chunk), device, args.repeats)
    level = float(grid.mean())
    timings = {"density_query_s": query_s}
    meshes = {}
    if hasattr(mc, "marching_cubes"):  # vectorised PyTorch marching cubes, on the grid's device
        meshes["torch"], timings["marching_cubes_torch_s"] = timed_call(
            lambda: mc.extract_mesh(grid, level, (-half, half), inside="above", method="torch"), device, args.repeats)
    grid_np = grid.cpu().numpy()
    skimage_kwargs = {"method": "skimage"} if hasattr(mc, "marching_cubes") else {}
    meshes["skimage"], timings["marching_cubes_skimage_s"] = timed_call(
        lambda: mc.extract_mesh(grid_np, level, (-half, half), inside="above", **skimage_kwargs), torch.device("cpu"),
        1, warmup=False)
    # an object-sized surface on the same grid: signed distance to a sphere of radius 0.8 (inside below 0)
    sphere = mc.grid_points(args.resolution, (-half, half)).to(device).norm(dim=-1) - 0.8
    sphere_timings = {}
    if hasattr(mc, "marching_cubes"):
        sphere_mesh, sphere_timings["torch"] = timed_call(lambda: mc.extract_mesh(sphere, 0.0, (-half, half), method="torch"),
                                                          device, args.repeats)
    sphere_mesh, sphere_timings["skimage"] = timed_call(
        lambda: mc.extract_mesh(sphere.cpu().numpy(), 0.0, (-half, half), **skimage_kwargs), torch.device("cpu"), 1,
        warmup=False)
    best = min((k for k in timings if k.startswith("marching_cubes")), key=timings.get)
    mesh = meshes[best.removeprefix("marching_cubes_").removesuffix("_s")]

    def colours():
        with torch.no_grad():
            vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32, device=device)
            return G.query(planes, vertices[None])[0][0, :, :3].cpu()

    _, timings["vertex_colours_s"] = timed_call(colours, device, args.repeats)
    total = timings["density_query_s"] + timings[best] + timings["vertex_colours_s"]

    label = "EG3D-equivalent" if args.eg3d else f"preset {args.preset}"
    what = (f"mesh extraction from a tri-plane generator ({label}, planes {cfg.generator.plane_resolution}x{cfg.generator.plane_channels}x3, "
            f"fp32{', fused sampling' if args.fused_sampling else ''}): density grid {args.resolution}^3 -> marching "
            f"cubes -> vertex colours")
    parts = ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v * 1e3:.0f} ms" for k, v in timings.items())
    sphere_text = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in sphere_timings.items())
    figure = (f"{total:.2f} s in all with {best.removeprefix('marching_cubes_').removesuffix('_s')} marching cubes "
              f"({parts}); {len(mesh.faces)} faces; marching cubes of a sphere on the same grid "
              f"({len(sphere_mesh.faces)} faces): {sphere_text}")
    record = {k: round(v, 4) for k, v in timings.items()} | {"total_s": round(total, 4), "faces": len(mesh.faces),
                                                             "sphere_faces": len(sphere_mesh.faces),
                                                             **{f"sphere_marching_cubes_{k}_s": round(v, 4)
                                                                for k, v in sphere_timings.items()},
                                                             "points_per_s": round(args.resolution ** 3 / query_s)}
    report(what, figure, device_name(device), record, write=not args.no_write)


if __name__ == "__main__":
    main()
