"""OpenGL renderer throughput: frames/s of OpenGLRenderer.render on a batch of cameras.

  python benchmarks/bench_render.py [--resolutions 64 128] [--batch 32] [--normals] [--supersample 1]

Renders one procedural chair (about 300 faces) from a batch of random orbit cameras; colour,
mask and depth (plus normals with --normals). The GL platform is chosen as in the renderer
(PYOPENGL_PLATFORM if set, else EGL on NVIDIA machines, else OSMesa).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, load_note, report  # noqa: E402

from unflat.cameras import Cameras  # noqa: E402
from unflat.data.synth import make_shape  # noqa: E402
from unflat.render.opengl import OpenGLRenderer  # noqa: E402


def frames_per_second(resolution: int, batch: int, repeats: int, normals: bool, supersample: int, category: str) -> tuple[float, str]:
    renderer = OpenGLRenderer(resolution, compute_normals=normals, supersample=supersample)
    mesh = make_shape(category, 0).mesh
    cameras = Cameras.sample_orbit(batch, torch.Generator().manual_seed(0), elevation_range=(-30, 60), radius=3.0, fov_deg=40.0)
    renderer.render(mesh, cameras[:2])  # warm-up: context, shaders, buffers
    start = time.perf_counter()
    for _ in range(repeats):
        renderer.render(mesh, cameras)
    seconds = time.perf_counter() - start
    platform = renderer.platform
    renderer.close()
    return batch * repeats / seconds, platform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--normals", action="store_true", help="also render world-space normals (second pass)")
    parser.add_argument("--supersample", type=int, default=1)
    parser.add_argument("--category", default="chair")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    results, platform = {}, ""
    for resolution in args.resolutions:
        fps, platform = frames_per_second(resolution, args.batch, args.repeats, args.normals, args.supersample, args.category)
        results[f"frames_per_s_{resolution}"] = round(fps, 1)
    gpu = "cuda" if torch.cuda.is_available() else "cpu"
    figure = ", ".join(f"{r}px: {results[f'frames_per_s_{r}']:.0f} frames/s" for r in args.resolutions)
    extras = (" + normals" if args.normals else "") + (f", supersample {args.supersample}" if args.supersample > 1 else "")
    figure += load_note()
    report(f"OpenGL renderer (pyrender), {args.category} mesh, batch {args.batch}{extras}", figure,
           f"{device_name(gpu)}, GL {platform}", {**results, "platform": platform}, write=not args.no_write)


if __name__ == "__main__":
    main()
