"""Tri-plane GAN training speed: images/s of a full training step (G step + D step + lazy R1 amortised
+ density regulariser + EMA) and peak GPU memory, at configurable sizes.

EG3D-equivalent settings (tri-plane 256x32x3, neural rendering 64^2, 48+48 samples, batch 32, SR to 128,
EG3D's generator: no extra blocks, 2-layer decoder) and the paper's (+g +d) are one flag each:

  python benchmarks/bench_triplane.py --eg3d                      # baseline architecture
  python benchmarks/bench_triplane.py --eg3d --paper-arch         # +g +d (the paper's generator)
  python benchmarks/bench_triplane.py --eg3d --views 3            # + multi-view discrimination
  python benchmarks/bench_triplane.py --eg3d --compile            # torch.compile
  python benchmarks/bench_triplane.py --preset tiny --device cpu  # smoke test

Compare with FIELD-NOTES' official EG3D figures on the same GPU (41.5 images/s at 64^2 with its defaults,
58.8 images/s with TF32). Steps are timed over a multiple of the R1 interval so R1 is amortised exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, report, sync  # noqa: E402

from unflat.cameras import Cameras  # noqa: E402
from unflat.data.format import DatasetInfo  # noqa: E402
from unflat.data.loader import Batch  # noqa: E402
from unflat.methods.base import TrainContext  # noqa: E402
from unflat.methods.mvtriplane import MVTriplane, paper, small, tiny  # noqa: E402

PRESETS = {"tiny": tiny, "small": small, "paper": paper}


def eg3d_settings(cfg):
    """EG3D's ShapeNet-like generator at 128^2 output: baseline architecture, single view."""
    return dataclasses.replace(
        cfg, plane_resolution=256, plane_channels=32, channel_base=32768, channel_max=512, z_dim=512, w_dim=512,
        mapping_layers=2, neural_resolution=64, output_resolution=128, num_coarse=48, num_fine=48, batch_size=32,
        extra_blocks=False, decoder_extra_layers=0, decoder_hidden=64, decoder_features=32, plane_aggregation="mean",
        sr_channels=128, d_channel_base=32768, d_channel_max=512, r1_every=16, density_reg=0.25, density_reg_every=4,
        multiview_views=1, multiview_start_step=-1, multiview_auto=False, diversity_every=0,
    )


def fake_batch(n: int, resolution: int, num_classes: int, device: torch.device, g: torch.Generator) -> Batch:
    images = (torch.rand(n, 3, resolution, resolution, generator=g) * 2 - 1).to(device)
    cams = Cameras.sample_orbit(n, g).to(device)
    ids = torch.randint(num_classes, (n,), generator=g).to(device)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return Batch(images, cams, ids, ids.clone())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--eg3d", action="store_true", help="EG3D-equivalent sizes and baseline architecture")
    parser.add_argument("--paper-arch", action="store_true", help="with --eg3d: the paper's +g +d generator")
    parser.add_argument("--views", type=int, default=None, help="views per latent (multi-view discrimination)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--neural-resolution", type=int, default=None)
    parser.add_argument("--output-resolution", type=int, default=None)
    parser.add_argument("--plane-resolution", type=int, default=None)
    parser.add_argument("--samples", type=int, nargs=2, default=None, metavar=("COARSE", "FINE"))
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--no-tf32", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=32, help="timed steps (rounded up to a multiple of r1_every)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    device = torch.device(args.device)
    cfg = PRESETS[args.preset]()
    if args.eg3d:
        cfg = eg3d_settings(cfg)
        if args.paper_arch:
            cfg = dataclasses.replace(cfg, extra_blocks=True, decoder_extra_layers=2, plane_aggregation="sum")
    overrides = {"batch_size": args.batch, "neural_resolution": args.neural_resolution,
                 "output_resolution": args.output_resolution, "plane_resolution": args.plane_resolution,
                 "multiview_views": args.views}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if args.samples:
        cfg = dataclasses.replace(cfg, num_coarse=args.samples[0], num_fine=args.samples[1])
    if args.views and args.views > 1:
        cfg = dataclasses.replace(cfg, multiview_start_step=0)
    cfg = dataclasses.replace(cfg, channels_last=not args.no_channels_last, diversity_every=0, multiview_auto=False,
                              blur_fade_images=1)
    cfg.validate()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.benchmark = True
    resolution = cfg.output_resolution or 128
    info = DatasetInfo(resolution, 1000, 1000, 1, tuple(f"c{i}" for i in range(args.classes)), False, False, False)
    ctx = TrainContext(device, torch.bfloat16 if args.precision == "bf16" else None, args.compile)
    torch.manual_seed(0)
    method = MVTriplane(cfg, info, ctx)
    g = torch.Generator().manual_seed(0)
    n = cfg.batch_size
    batches = [fake_batch(n, resolution, args.classes, device, g) for _ in range(4)]
    steps = -(-args.steps // cfg.r1_every) * cfg.r1_every
    for step in range(args.warmup):
        method.train_step(batches[step % 4], step + 1)  # step 0 would be an R1 step
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    for step in range(steps):
        method.train_step(batches[step % 4], step)
    sync(device)
    seconds = time.perf_counter() - start
    images_per_s = n * steps / seconds
    peak_gb = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    g_params = sum(p.numel() for p in method.G.parameters())
    d_params = sum(p.numel() for p in method.D.parameters())
    label = ("EG3D-equivalent " + ("+g+d " if args.paper_arch else "baseline ")) if args.eg3d else f"preset {args.preset} "
    what = (f"tri-plane GAN training step, {label}(planes {cfg.plane_resolution}x{cfg.plane_channels}x3, "
            f"render {cfg.neural_resolution}^2, {cfg.num_coarse}+{cfg.num_fine} samples, SR to {resolution}, "
            f"batch {n}, views {method.views_per_latent(0)}, {args.precision}{', compiled' if args.compile else ''})")
    record = {"images_per_s": round(images_per_s, 2), "s_per_kimg": round(1000 / images_per_s, 2),
              "peak_memory_gb": None if peak_gb is None else round(peak_gb, 2), "g_params": g_params, "d_params": d_params, "steps": steps}
    memory = "" if peak_gb is None else f", peak {peak_gb:.1f} GB"
    figure = f"{images_per_s:.1f} images/s ({1000 / images_per_s:.1f} s/kimg){memory}, G {g_params / 1e6:.2f}M params"
    report(what, figure, device_name(device), record, write=not args.no_write)


if __name__ == "__main__":
    main()
