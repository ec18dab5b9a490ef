"""Off-the-shelf OpenGL renderer throughput: frames/s of the batched moderngl renderer and of pyrender,
same mesh, same cameras, same run.

  python benchmarks/bench_render.py [--resolutions 64 128] [--batch 32] [--normals] [--supersample 1]
                                    [--backends moderngl pyrender]

Renders one procedural chair (about 300 faces) from a batch of random orbit cameras; colour, mask and
depth (plus normals with --normals). moderngl draws the batch in one pass through EGL (NVIDIA on GPU
machines, Mesa llvmpipe on CPU machines); pyrender draws view by view on its platform (PYOPENGL_PLATFORM
if set, else EGL on NVIDIA machines, else OSMesa). One row per backend.
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
from unflat.render.gl_backends import create_renderer  # noqa: E402
from unflat.render.moderngl_backend import moderngl_available  # noqa: E402


def frames_per_second(backend: str, resolution: int, batch: int, repeats: int, normals: bool, supersample: int,
                      category: str) -> tuple[float, str]:
    renderer = create_renderer(backend, resolution, compute_normals=normals, supersample=supersample)
    mesh = make_shape(category, 0).mesh
    cameras = Cameras.sample_orbit(batch, torch.Generator().manual_seed(0), elevation_range=(-30, 60), radius=3.0, fov_deg=40.0)
    renderer.render(mesh, cameras)  # warm-up: context, shaders, buffers, framebuffer of this batch size
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
    parser.add_argument("--normals", action="store_true", help="also render world-space normals")
    parser.add_argument("--supersample", type=int, default=1)
    parser.add_argument("--category", default="chair")
    parser.add_argument("--backends", nargs="+", default=["moderngl", "pyrender"], choices=["moderngl", "pyrender"])
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    gpu = "cuda" if torch.cuda.is_available() else "cpu"
    extras = (" + normals" if args.normals else "") + (f", supersample {args.supersample}" if args.supersample > 1 else "")
    rates: dict[str, dict[int, float]] = {}
    for backend in args.backends:
        if backend == "moderngl" and moderngl_available() is not None:
            print(f"skipping moderngl: {moderngl_available()}", file=sys.stderr)
            continue
        results, platform = {}, ""
        for resolution in args.resolutions:
            fps, platform = frames_per_second(backend, resolution, args.batch, args.repeats, args.normals,
                                              args.supersample, args.category)
            results[f"frames_per_s_{resolution}"] = round(fps, 1)
        rates[backend] = {r: results[f"frames_per_s_{r}"] for r in args.resolutions}
        figure = ", ".join(f"{r}px: {results[f'frames_per_s_{r}']:.0f} frames/s" for r in args.resolutions)
        if backend == "pyrender" and "moderngl" in rates:
            figure += "; moderngl / pyrender: " + ", ".join(
                f"{r}px {rates['moderngl'][r] / rates['pyrender'][r]:.1f}x" for r in args.resolutions)
        figure += load_note()
        how = "batched, one pass" if backend == "moderngl" else "view by view"
        report(f"OpenGL renderer ({backend}, {how}), {args.category} mesh, batch {args.batch}{extras}", figure,
               f"{device_name(gpu)}, GL {platform}", {**results, "backend": backend, "platform": platform},
               write=not args.no_write)


if __name__ == "__main__":
    main()
