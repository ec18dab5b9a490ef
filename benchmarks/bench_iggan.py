"""IG-GAN training step, split into its parts: G (forward + camera-frame resampling + update through
the proxy), OpenGL (marching cubes, then drawing), D update, proxy-renderer update (L2 + DOM).

  python benchmarks/bench_iggan.py [--preset paper] [--device cuda] [--steps 5] [--no-write]

Images are random (the cost of a step does not depend on their content); the OpenGL renderer is the
real one (EGL on NVIDIA machines, OSMesa elsewhere; see unflat.render.opengl).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, report, sync  # noqa: E402

from unflat.cameras import Cameras  # noqa: E402
from unflat.data.format import DatasetInfo  # noqa: E402
from unflat.data.loader import Batch  # noqa: E402
from unflat.engine.trainer import make_context  # noqa: E402
from unflat.methods.iggan import SPEC, IGGAN  # noqa: E402
from unflat.render.voxel_pipeline import voxels_to_meshes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=["tiny", "small", "paper"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--mesh-workers", type=int, default=None, help="marching-cubes threads (default: the preset's)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()

    cfg = replace(SPEC.config(args.preset), device=args.device, precision=args.precision)
    if args.batch_size:
        cfg = replace(cfg, batch_size=args.batch_size)
    if args.mesh_workers:
        cfg = replace(cfg, mesh_workers=args.mesh_workers)
    cfg.validate()
    ctx = make_context(cfg)
    device = ctx.device
    info = DatasetInfo(resolution=cfg.image_resolution, num_images=0, num_shapes=0, views_per_shape=1,
                       class_names=("bench",), has_masks=False, has_depth=False, has_meshes=False)
    torch.manual_seed(0)
    method = IGGAN(cfg, info, ctx)
    b, s = cfg.batch_size, cfg.image_resolution
    cameras = Cameras.sample_orbit(b, torch.Generator().manual_seed(0), elevation_range=(-30, 60), radius=3.0,
                                   fov_deg=40.0, uniform_on_sphere=False).to(device)
    batch = Batch(images=torch.rand(b, 3, s, s, device=device) * 2 - 1, cameras=cameras,
                  class_ids=torch.zeros(b, dtype=torch.long, device=device),
                  shape_ids=torch.arange(b, device=device))

    phases = ["G", "marching_cubes", "opengl_draw", "D", "renderer"]
    totals = {p: 0.0 for p in phases}

    def clock(name: str, fn, *a, record: bool):
        sync(device)
        start = time.perf_counter()
        out = fn(*a)
        sync(device)
        if record:
            totals[name] += time.perf_counter() - start
        return out

    def opengl(fakes, record: bool) -> None:
        # method.render_opengl, split into meshing and drawing
        meshes = clock("marching_cubes", lambda: voxels_to_meshes(
            fakes.binary, 0.5, cfg.voxel_extent, cfg.mesh_color, cfg.mesh_workers), record=record)
        out = clock("opengl_draw", lambda: method.pipeline.render_meshes(meshes, fakes.cameras), record=record)
        fakes.opengl = (torch.round(out.rgb * 255.0) / 127.5 - 1.0).to(device)

    for step in range(args.warmup + args.steps):
        record = step >= args.warmup
        torch.manual_seed(step)
        real = method.real_images(batch)
        fakes = clock("G", lambda: method.make_fakes(method.fake_cameras(batch.cameras)), record=record)
        opengl(fakes, record)
        clock("D", method.update_discriminator, real, fakes, record=record)
        clock("renderer", method.update_renderer, fakes, record=record)
        clock("G", method.update_generator, fakes, record=record)

    ms = {p: 1000 * totals[p] / args.steps for p in phases}
    step_ms = sum(ms.values())
    platform = method.pipeline.renderer.platform
    # On a shared CPU the thread count decides the figure (OpenMP threads spin-wait on busy cores).
    load = f", {torch.get_num_threads()} threads, load avg {os.getloadavg()[0]:.1f}" if device.type == "cpu" else ""
    name = f"{device_name(device)}, GL {platform}{load}"
    parts = ", ".join(f"{p} {ms[p]:.0f}" for p in phases)
    report(
        f"iggan train step, preset {args.preset} ({cfg.voxel_resolution}^3 voxels, {s}px, batch {b}, {ctx.autocast_dtype or 'fp32'})",
        f"{step_ms:.0f} ms/step = {b * 1000 / step_ms:.1f} images/s; ms: {parts}",
        name,
        {"step_ms": step_ms, "images_per_s": b * 1000 / step_ms, "batch_size": b, **{f"{p}_ms": v for p, v in ms.items()},
         "mesh_workers": cfg.mesh_workers, "gl_platform": platform},
        not args.no_write,
    )


if __name__ == "__main__":
    main()
