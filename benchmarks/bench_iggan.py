"""IG-GAN training step, split into its parts, for each OpenGL backend in the same run: G (forward +
camera-frame resampling + update through the proxy), marching cubes (PyTorch, on the training device),
OpenGL draw (upload + draw + read back), D update, proxy-renderer update (L2 + DOM); plus the whole
step as training runs it (moderngl: drawing overlapped with the proxy's forward pass).

  python benchmarks/bench_iggan.py [--preset paper] [--device cuda] [--steps 5] [--backends moderngl pyrender]

Images are random (the cost of a step does not depend on their content); G is untrained, so its
binarised voxels are noisy and their meshes large: the heaviest case for marching cubes and OpenGL.
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
from unflat.config import replace_fields  # noqa: E402
from unflat.data.format import DatasetInfo  # noqa: E402
from unflat.data.loader import Batch  # noqa: E402
from unflat.engine.trainer import make_context  # noqa: E402
from unflat.methods.iggan import SPEC, IGGAN  # noqa: E402
from unflat.render.moderngl_backend import moderngl_available  # noqa: E402
from unflat.render.voxel_pipeline import voxels_to_packed  # noqa: E402

PHASES = ["G", "marching_cubes", "opengl_draw", "D", "renderer"]
GL_PARTS = ["prepare", "upload", "draw", "readback", "finish"]
"""Parts of opengl_draw the moderngl renderer times itself (``DrawTimings``)."""


def bench_backend(cfg, backend: str, batch: Batch, info: DatasetInfo, steps: int, warmup: int) -> dict:
    """ms per phase (sequential), faces per step, and ms of a whole overlapped training step."""
    cfg = replace_fields(cfg, {"rendering.backend": backend.removesuffix("-host")})
    ctx = make_context(cfg)
    device = ctx.device
    torch.manual_seed(0)
    method = IGGAN(cfg, info, ctx)
    if backend == "moderngl-host":
        method.pipeline.renderer.use_cuda_interop = False
    totals = {p: 0.0 for p in PHASES}
    gl_parts = {p: 0.0 for p in GL_PARTS}
    gl_path = "n/a"
    faces = 0

    def clock(name: str, fn, record: bool):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        if record:
            totals[name] += time.perf_counter() - start
        return out

    for step in range(warmup + steps):
        record = step >= warmup
        torch.manual_seed(step)
        real = method.real_images(batch)
        fakes = clock("G", lambda: method.make_fakes(method.fake_cameras(batch.cameras)), record)
        meshes = clock("marching_cubes", lambda: voxels_to_packed(fakes.binary, 0.5, cfg.voxel_extent), record)
        out = clock("opengl_draw", lambda: method.pipeline.render_meshes(meshes, fakes.cameras).result(), record)
        timings = getattr(method.pipeline.renderer, "last_timings", None)  # moderngl: the draw's parts
        if record and timings is not None:
            gl_path = timings.path
            for part in GL_PARTS:
                gl_parts[part] += getattr(timings, f"{part}_ms") / steps
        fakes.opengl = (torch.round(out.rgb * 255.0) / 127.5 - 1.0).to(device)
        faces += int(meshes.face_counts.sum()) if record else 0
        clock("D", lambda: method.update_discriminator(real, fakes), record)
        clock("renderer", lambda: method.update_renderer(fakes), record)
        clock("G", lambda: method.update_generator(fakes), record)
    ms = {p: 1000 * totals[p] / steps for p in PHASES}

    # The step as the trainer runs it (train_step: overlap on when the backend can draw in its own thread).
    method.pretraining_steps = 0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        torch.manual_seed(step)
        method.train_step(batch, step)
    sync(device)
    overlapped = 1000 * (time.perf_counter() - start) / steps
    return {"ms": ms, "gl_parts": gl_parts if any(gl_parts.values()) else None, "gl_path": gl_path,
            "faces_per_step": faces / steps, "train_step_ms": overlapped,
            "platform": method.pipeline.renderer.platform + (f" ({method.pipeline.renderer.gl_renderer})"
                                                             if hasattr(method.pipeline.renderer, "gl_renderer") else "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=["tiny", "small", "paper"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--backends", nargs="+", default=["moderngl", "pyrender"],
                        choices=["moderngl", "moderngl-host", "pyrender"],
                        help="moderngl: batched, CUDA meshes through CUDA-GL interop where it works; moderngl-host: "
                             "the same with interop off (meshes through host memory); pyrender: one mesh at a time")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()

    cfg = replace(SPEC.config(args.preset), device=args.device, precision=args.precision)
    if args.batch_size:
        cfg = replace(cfg, batch_size=args.batch_size)
    cfg.validate()
    device = torch.device(args.device)
    info = DatasetInfo(resolution=cfg.image_resolution, num_images=0, num_shapes=0, views_per_shape=1,
                       class_names=("bench",), has_masks=False, has_depth=False, has_meshes=False)
    b, s = cfg.batch_size, cfg.image_resolution
    cameras = Cameras.sample_orbit(b, torch.Generator().manual_seed(0), elevation_range=(-30, 60), radius=3.0,
                                   fov_deg=40.0, uniform_on_sphere=False).to(device)
    g = torch.Generator().manual_seed(1)
    batch = Batch(images=(torch.rand(b, 3, s, s, generator=g) * 2 - 1).to(device), cameras=cameras,
                  class_ids=torch.zeros(b, dtype=torch.long, device=device), shape_ids=torch.arange(b, device=device))
    step_ms: dict[str, float] = {}
    for backend in args.backends:
        if backend.startswith("moderngl") and moderngl_available() is not None:
            print(f"skipping moderngl: {moderngl_available()}", file=sys.stderr)
            continue
        result = bench_backend(cfg, backend, batch, info, args.steps, args.warmup)
        ms = result["ms"]
        total = sum(ms.values())
        step_ms[backend] = total
        opengl_share = (ms["marching_cubes"] + ms["opengl_draw"]) / total
        # On a shared CPU the thread count decides the figure (OpenMP threads spin-wait on busy cores).
        load = f", {torch.get_num_threads()} threads, load avg {os.getloadavg()[0]:.1f}" if device.type == "cpu" else ""
        parts = ", ".join(f"{p} {ms[p]:.0f}" for p in PHASES)
        figure = (f"{total:.0f} ms/step = {b * 1000 / total:.1f} images/s; ms: {parts}; OpenGL (meshing + drawing) "
                  f"{100 * opengl_share:.0f}% of the step; {result['faces_per_step'] / b:,.0f} faces per mesh; "
                  f"train_step as trained: {result['train_step_ms']:.0f} ms")
        if result["gl_parts"]:
            figure += "; OpenGL draw = " + ", ".join(f"{p} {v:.0f}" for p, v in result["gl_parts"].items()) + " ms"
            figure += f" ({result['gl_path']})"
        if backend == "pyrender" and "moderngl" in step_ms:
            figure += f"; moderngl step {step_ms['pyrender'] / step_ms['moderngl']:.1f}x faster"
        report(
            f"iggan train step, {backend}, preset {args.preset} ({cfg.voxel_resolution}^3 voxels, {s}px, batch {b}, "
            f"{make_context(cfg).autocast_dtype or 'fp32'})",
            figure,
            f"{device_name(device)}, GL {result['platform']}{load}",
            {"backend": backend, "step_ms": total, "images_per_s": b * 1000 / total, "batch_size": b,
             **{f"{p}_ms": v for p, v in ms.items()}, "opengl_share": opengl_share,
             "faces_per_mesh": result["faces_per_step"] / b, "train_step_ms": result["train_step_ms"],
             "gl_platform": result["platform"], **{f"gl_{p}_ms": v for p, v in (result["gl_parts"] or {}).items()}},
            not args.no_write,
        )


if __name__ == "__main__":
    main()
