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
3. With --run RUN: the same latency for a trained progressive run (its own network and resolution),
   and image -> GLB end to end (`Progressive.reconstruct` on PNG files: decode, crop/centre, predict,
   textured GLB written to disk; no turntable) at the same batch sizes.
4. With --pti-run RUN (a trained mvtriplane or 3dgp run): the wall time of PTI inversion of one image
   (`unflat.methods.pti.invert_image`, PTI's 500 latent + 350 tuning steps by default) on the same
   device, and its ratio to the reconstruction network at batch 1 and to image -> GLB at batch 1.
Prints one JSON line per figure and appends rows to BENCHMARKS.md (unless --no-write); --summary
writes every figure into one JSON file.

  python benchmarks/bench_progressive.py --skip-rasteriser --run runs/recon --images data/heldout \
      --pti-run runs/mvtriplane --pti-backbone data/backbone.safetensors --summary latency.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, load_note, report, timed  # noqa: E402
from common import sync as common_sync  # noqa: E402

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


def paper_method(device: torch.device, resolution: int):
    """The `paper` preset network with random weights (latency does not depend on the weights)."""
    from unflat.data.format import DatasetInfo
    from unflat.methods.base import TrainContext
    from unflat.methods.progressive import Progressive, paper

    info = DatasetInfo(resolution, 1, 1, 2, ("object",), True, False, False)
    return Progressive(replace(paper(), device=device.type), info, TrainContext(device))


def reconstruction_latency(device: torch.device, resolution: int, batches: list[int], repeats: int,
                           method=None) -> dict[str, float]:
    """Network latency (image -> vertices + texture) per batch size, plus in-memory GLB assembly of one mesh."""
    method = method if method is not None else paper_method(device, resolution)
    resolution = method.image_resolution
    out: dict[str, float] = {"faces": int(method.template.num_faces), "texture": method.cfg.decoder.texture_resolution,
                             "resolution": resolution}
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


def write_input_images(folder: Path, count: int, resolution: int, dataset: Path | None) -> list[Path]:
    """``count`` PNG files of side ``resolution`` to reconstruct: a dataset's images (e.g. held-out shapes;
    their own side), or coloured discs on white when no dataset is given."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if dataset is not None:
        from unflat.data.format import open_dataset

        data = open_dataset(dataset)
        pick = np.arange(count) % len(data)
        arrays = [np.asarray(data.images[i]) for i in pick]
    else:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[:resolution, :resolution] / resolution - 0.5
        arrays = []
        for _ in range(count):
            image = np.full((resolution, resolution, 3), 255, np.uint8)
            image[xx ** 2 + yy ** 2 < rng.uniform(0.05, 0.15)] = rng.integers(0, 200, 3)
            arrays.append(image)
    paths = []
    for i, array in enumerate(arrays):
        paths.append(folder / f"input-{i:03d}.png")
        Image.fromarray(array).save(paths[-1])
    return paths


def end_to_end_latency(method, device: torch.device, batches: list[int], repeats: int, dataset: Path | None) -> dict[str, float]:
    """Image files -> textured GLB files (`Progressive.reconstruct`, no turntable), per batch size."""
    import tempfile
    import time

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-progressive-") as tmp:
        files = write_input_images(Path(tmp) / "in", max(batches), method.image_resolution, dataset)
        method.reconstruct(files[:1], Path(tmp) / "warm", batch_size=1, turntable=False)  # warm-up (kernels, caches)
        for batch in batches:
            times = []
            for r in range(max(1, repeats)):
                common_sync(device)
                start = time.perf_counter()
                written = method.reconstruct(files[:batch], Path(tmp) / f"out-{batch}-{r}", batch_size=batch, turntable=False)
                common_sync(device)
                times.append(time.perf_counter() - start)
            assert sum(p.suffix == ".glb" for p in written) == batch
            seconds = sorted(times)[len(times) // 2]  # median
            out[f"e2e_batch{batch}_ms"] = seconds * 1000
            out[f"e2e_batch{batch}_ms_per_image"] = seconds * 1000 / batch
    return out


def pti_inversion_time(run: Path, device: torch.device, steps_w: int, steps_g: int, backbone: Path | None,
                       images: Path | None) -> dict:
    """Wall seconds of PTI (both stages) for one image with a trained tri-plane generator, after a 1+1-step warm-up."""
    import tempfile
    import time

    from unflat.runs import load_run
    from unflat.methods.pti import PTISettings, choose_feature_fn, invert_image, load_image

    loaded = load_run(run, device)
    method = loaded.method
    feature_fn, feature_name, classifier = choose_feature_fn(method, None, backbone)
    with tempfile.TemporaryDirectory(prefix="bench-pti-") as tmp:
        path = write_input_images(Path(tmp), 1, method.output_resolution, images)[0]
        target = load_image(path, method.output_resolution).to(method.device)
    invert_image(method, target, PTISettings(steps_w=1, steps_g=1, progress=False), feature_fn, classifier)
    common_sync(device)
    start = time.perf_counter()
    result = invert_image(method, target, PTISettings(steps_w=steps_w, steps_g=steps_g, progress=False), feature_fn, classifier)
    common_sync(device)
    seconds = time.perf_counter() - start
    return {"pti_seconds": seconds, "steps_w": steps_w, "steps_g": steps_g, "feature_space": feature_name,
            "generator": loaded.spec.name, "generator_step": loaded.step, "output_resolution": method.output_resolution,
            "loss_w_first": result.losses_w[0] if result.losses_w else None,
            "loss_w_last": result.losses_w[-1] if result.losses_w else None,
            "loss_g_last": result.losses_g[-1] if result.losses_g else None}


def gpu_neighbours(device: torch.device) -> str:
    """" (N other processes on the GPU)" when the GPU was shared during the run (timings are then inflated)."""
    if device.type != "cuda":
        return ""
    import subprocess

    try:
        lines = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return ""
    others = len([pid for pid in lines if pid.strip() and pid.strip() != str(os.getpid())])
    return f" ({others} other processes on the GPU)" if others else ""


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
    parser.add_argument("--skip-rasteriser", action="store_true", help="skip the rasteriser frames/s part")
    parser.add_argument("--skip-paper-network", action="store_true", help="skip the paper preset network's latency")
    parser.add_argument("--run", type=Path, help="a trained progressive run: time its network and image -> GLB end to end")
    parser.add_argument("--images", type=Path, help="dataset whose images are the inputs (default: synthetic discs)")
    parser.add_argument("--pti-run", type=Path, help="a trained mvtriplane/3dgp run: time PTI inversion of one image")
    parser.add_argument("--pti-steps-w", type=int, default=500, help="PTI stage-1 (latent) steps (PTI/EG3D-PTI: 500)")
    parser.add_argument("--pti-steps-g", type=int, default=350, help="PTI stage-2 (generator tuning) steps (PTI: 350)")
    parser.add_argument("--pti-backbone", type=Path, help="domain backbone for PTI's feature loss when VGG16 weights are absent")
    parser.add_argument("--summary", type=Path, help="write every figure into this JSON file")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    name = device_name(device)
    write = not args.no_write

    summary: dict = {"device": name}

    def save_summary() -> None:  # after every part: a run stopped by a timeout keeps what it measured
        if args.summary is not None:
            args.summary.parent.mkdir(parents=True, exist_ok=True)
            args.summary.write_text(json.dumps(summary, indent=2) + "\n")

    if not args.skip_rasteriser:
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
        summary["rasteriser"] = results
        save_summary()

    timed_networks = [] if args.skip_paper_network else [(None, "paper network", "paper_network")]
    method = None
    if args.run is not None:
        from unflat.runs import load_run

        loaded = load_run(args.run, device)
        method = loaded.method
        timed_networks.append((method, f"trained run at step {loaded.step}", "network"))
    for network, what, key in timed_networks:
        recon = reconstruction_latency(device, args.recon_resolution, args.recon_batches, args.repeats, network)
        parts = [f"batch {b}: {recon[f'batch{b}_ms']:.1f} ms ({recon[f'batch{b}_ms_per_image']:.2f} ms/image)"
                 for b in args.recon_batches]
        parts.append(f"GLB assembly {recon['glb_ms']:.1f} ms/mesh")
        report(f"progressive: reconstruct latency, {what} ({recon['resolution']}px in, {recon['texture']}px texture, "
               f"{recon['faces']} faces)", ", ".join(parts) + load_note() + gpu_neighbours(device), name, {"results": recon}, write)
        summary[key] = recon
        save_summary()
    what = timed_networks[-1][1] if timed_networks else ""
    if method is not None:
        e2e = end_to_end_latency(method, device, args.recon_batches, max(1, args.repeats // 2), args.images)
        parts = [f"batch {b}: {e2e[f'e2e_batch{b}_ms']:.0f} ms ({e2e[f'e2e_batch{b}_ms_per_image']:.1f} ms/image)"
                 for b in args.recon_batches]
        report(f"progressive: image file -> textured GLB file end to end, {what} ({method.image_resolution}px)",
               ", ".join(parts) + load_note() + gpu_neighbours(device), name, {"results": e2e}, write)
        summary["end_to_end"] = e2e
        save_summary()
    if args.pti_run is not None:
        pti = pti_inversion_time(args.pti_run, device, args.pti_steps_w, args.pti_steps_g, args.pti_backbone, args.images)
        b1 = min(args.recon_batches)
        figure = f"PTI {pti['steps_w']}+{pti['steps_g']} steps: {pti['pti_seconds']:.1f} s/image"
        for key, label in (("paper_network", "the paper-size network"), ("network", "this run's network")):
            if key in summary:
                pti[f"ratio_to_{key}_batch1"] = pti["pti_seconds"] * 1000 / summary[key][f"batch{b1}_ms_per_image"]
                figure += f", {pti[f'ratio_to_{key}_batch1']:.0f}x {label} at batch {b1}"
        if "end_to_end" in summary:
            pti["ratio_to_end_to_end_batch1"] = pti["pti_seconds"] * 1000 / summary["end_to_end"][f"e2e_batch{b1}_ms_per_image"]
            figure += f", {pti['ratio_to_end_to_end_batch1']:.0f}x image -> GLB end to end"
        report(f"progressive vs PTI: one image, {pti['generator']} generator at step {pti['generator_step']} "
               f"({pti['output_resolution']}px, features: {pti['feature_space']})",
               figure + load_note() + gpu_neighbours(device), name, {"results": pti}, write)
        summary["pti"] = pti
        save_summary()
    save_summary()


if __name__ == "__main__":
    main()
