"""progressive: rasteriser backends (frames/s at 256x256) and single-image reconstruction latency.

  python benchmarks/bench_progressive.py [--device auto] [--resolution 256] [--batch 16]
      [--faces-rings 32 --faces-segments 32] [--recon-batches 1 64] [--no-write]

1. Rasteriser: a textured sphere template (32 x 32 -> 1,984 faces) seen from a batch of orbit
   cameras; "render" = rasterise + interpolate UVs + texture lookup (what every training render
   does), "silhouette" = the DIB-R soft silhouette on top. Every backend that runs on the device
   is measured in the same process (torch always; nvdiffrast on CUDA when it builds), and their
   ratio is reported.
2. Reconstruction: the `paper` preset network (random weights: the cost does not depend on them)
   at the given image size; latency of image -> (mesh vertices, texture) at batch 1 and 64, plus
   the time to turn one prediction into a textured GLB in memory.
Prints one JSON line per figure and appends rows to BENCHMARKS.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, load_note, report, timed  # noqa: E402

from unflat.cameras import Cameras  # noqa: E402
from unflat.geometry.sphere_template import sphere_template  # noqa: E402
from unflat.render import nvdiffrast_backend  # noqa: E402
from unflat.render.rasterizer import clip_from_cameras, render_textured_mesh, soft_silhouette  # noqa: E402


def rasteriser_fps(device: torch.device, backend: str, resolution: int, batch: int, rings: int, segments: int,
                   repeats: int) -> dict[str, float]:
    t = sphere_template(rings, segments).to(device)
    cams = Cameras.sample_orbit(batch, torch.Generator().manual_seed(0), elevation_range=(-30, 60), radius=2.5).to(device)
    verts = (t.vertices[None] * 0.7).expand(batch, -1, -1).contiguous()
    tex = torch.rand(batch, 3, 256, 256, device=device, generator=torch.Generator(device).manual_seed(0))

    def render():
        render_textured_mesh(verts, t.faces, t.uv, t.faces_uv, tex, cams, resolution, backend=backend, with_silhouette=False)

    clip = clip_from_cameras(verts, cams)

    def silhouette():
        soft_silhouette(clip, t.faces, resolution)

    return {
        "render_fps": batch / timed(render, device, repeats),
        "silhouette_fps": batch / timed(silhouette, device, repeats),
        "faces": int(t.num_faces),
    }


def reconstruction_latency(device: torch.device, resolution: int, batches: list[int], repeats: int) -> dict[str, float]:
    from unflat.data.format import DatasetInfo
    from unflat.methods.base import TrainContext
    from unflat.methods.progressive import Progressive, paper

    cfg = replace(paper(), device=device.type)
    info = DatasetInfo(resolution, 1, 1, 2, ("object",), True, False, False)
    method = Progressive(cfg, info, TrainContext(device))
    out: dict[str, float] = {"faces": int(method.template.num_faces), "texture": cfg.texture_resolution}
    for batch in batches:
        images = torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1
        seconds = timed(lambda: method._predict_eval(images), device, repeats)
        out[f"batch{batch}_ms"] = seconds * 1000
        out[f"batch{batch}_ms_per_image"] = seconds * 1000 / batch
    verts, texture = method._predict_eval(torch.rand(1, 3, resolution, resolution, device=device) * 2 - 1)
    import trimesh

    def to_glb():
        mesh = method.to_trimesh(verts[0], texture[0])
        io.BytesIO(trimesh.exchange.gltf.export_glb(mesh))

    out["glb_ms"] = timed(to_glb, "cpu", max(1, repeats)) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--faces-rings", type=int, default=32)
    parser.add_argument("--faces-segments", type=int, default=32)
    parser.add_argument("--recon-resolution", type=int, default=256)
    parser.add_argument("--recon-batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    name = device_name(device)
    write = not args.no_write

    backends = ["torch"] + (["nvdiffrast"] if device.type == "cuda" and nvdiffrast_backend.available(device) else [])
    if device.type == "cuda" and len(backends) == 1:
        print(f"nvdiffrast unavailable: {nvdiffrast_backend.unavailable_reason(device)}", file=sys.stderr)
    results = {b: rasteriser_fps(device, b, args.resolution, args.batch, args.faces_rings, args.faces_segments, args.repeats)
               for b in backends}
    faces = results["torch"]["faces"]
    parts = [f"{b}: render {r['render_fps']:.0f} frames/s" for b, r in results.items()]
    parts.append(f"soft silhouette {results['torch']['silhouette_fps']:.0f} frames/s")
    if "nvdiffrast" in results:
        parts.append(f"nvdiffrast/torch render ratio {results['nvdiffrast']['render_fps'] / results['torch']['render_fps']:.1f}x")
    report(f"progressive: mesh rasteriser, {faces}-face textured sphere, {args.resolution}px, batch {args.batch}",
           ", ".join(parts) + load_note(), name, {"results": results}, write)

    recon = reconstruction_latency(device, args.recon_resolution, args.recon_batches, args.repeats)
    parts = [f"batch {b}: {recon[f'batch{b}_ms']:.1f} ms ({recon[f'batch{b}_ms_per_image']:.2f} ms/image)" for b in args.recon_batches]
    parts.append(f"GLB assembly {recon['glb_ms']:.1f} ms/mesh")
    report(f"progressive: reconstruct latency, paper network ({args.recon_resolution}px in, {recon['texture']}px texture, "
           f"{recon['faces']} faces)", ", ".join(parts) + load_note(), name, {"results": recon}, write)


if __name__ == "__main__":
    main()
