"""Tri-plane GAN training speed: images/s of a full training step (G step + D step + lazy R1 amortised
+ density regulariser + EMA) and peak GPU memory, at configurable sizes.

EG3D-equivalent settings (tri-plane 256x32x3, neural rendering 64^2, 48+48 samples, batch 32, SR to 128,
EG3D's generator: no extra blocks, 2-layer decoder) and the paper's (+g +d) are one flag each:

  python benchmarks/bench_triplane.py --eg3d                      # baseline architecture
  python benchmarks/bench_triplane.py --eg3d --paper-arch         # +g +d (the paper's generator)
  python benchmarks/bench_triplane.py --eg3d --views 3            # + multi-view discrimination
  python benchmarks/bench_triplane.py --eg3d --compile            # torch.compile
  python benchmarks/bench_triplane.py --preset tiny --device cpu  # smoke test
  python benchmarks/bench_triplane.py --eg3d --variants eager,eager+fused,compile,compile+fused,compile+fused+ckpt
  python benchmarks/bench_triplane.py --eg3d --max-batch         # largest batch that fits (one row)

A variant is a base - eager, compile, or compile-max (torch.compile mode max-autotune-no-cudagraphs) - plus
options: +fused (fused Triton tri-plane sampling), +ckpt (gradient checkpointing of rendering), +interp (compiled
upsampling through F.interpolate, as before stylegan2.RESAMPLE_WITHOUT_SCATTER: for the A/B). Each variant
builds a fresh model in the same process and prints/appends its own row.

Compare with FIELD-NOTES' official EG3D figures on the same GPU (41.5 images/s at 64^2 with its defaults,
58.8 images/s with TF32). Steps are timed over a multiple of the R1 interval so R1 is amortised exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, report, sync  # noqa: E402

from unflat.config import replace_fields
from unflat.cameras import Cameras  # noqa: E402
from unflat.nets import stylegan2  # noqa: E402
from unflat.data.format import DatasetInfo  # noqa: E402
from unflat.data.loader import Batch  # noqa: E402
from unflat.methods.base import TrainContext  # noqa: E402
from unflat.methods.mvtriplane import MVTriplane, paper, small, tiny  # noqa: E402
from unflat.render.triplane_sampling import interpreter_on, triton_available  # noqa: E402

PRESETS = {"tiny": tiny, "small": small, "paper": paper}


def eg3d_settings(cfg):
    """EG3D's ShapeNet-like generator at 128^2 output: baseline architecture, single view."""
    return replace_fields(cfg, {"generator.plane_resolution": 256, "generator.plane_channels": 32, "generator.channel_base": 32768, "generator.channel_max": 512, "generator.z_dim": 512, "generator.w_dim": 512, "generator.mapping_layers": 2, "rendering.neural_resolution": 64, "rendering.output_resolution": 128, "rendering.num_coarse": 48, "rendering.num_fine": 48, "batch_size": 32, "generator.extra_blocks": False, "generator.decoder_extra_layers": 0, "generator.decoder_hidden": 64, "generator.decoder_features": 32, "generator.plane_aggregation": "mean", "rendering.sr_channels": 128, "discriminator.channel_base": 32768, "discriminator.channel_max": 512, "regularisation.r1_every": 16, "regularisation.density_reg": 0.25, "regularisation.density_reg_every": 4, "multiview.views": 1, "multiview.start_step": -1, "multiview.auto": False, "multiview.diversity_every": 0})


def fake_batch(n: int, resolution: int, num_classes: int, device: torch.device, g: torch.Generator) -> Batch:
    images = (torch.rand(n, 3, resolution, resolution, generator=g) * 2 - 1).to(device)
    cams = Cameras.sample_orbit(n, g).to(device)
    ids = torch.randint(num_classes, (n,), generator=g).to(device)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return Batch(images, cams, ids, ids.clone())


VARIANT_BASES = {"eager": (False, None), "compile": (True, None), "compile-max": (True, "max-autotune-no-cudagraphs")}
VARIANT_OPTIONS = {"fused": "rendering.fused_sampling", "ckpt": "rendering.grad_checkpoint", "interp": "interp"}
"""+interp: compiled upsampling through F.interpolate (the form before stylegan2.RESAMPLE_WITHOUT_SCATTER)."""


def parse_variant(name: str) -> tuple[bool, str | None, dict]:
    """"compile+fused+ckpt" -> (compile, compile mode, config overrides)."""
    base, *options = name.split("+")
    if base not in VARIANT_BASES or any(o not in VARIANT_OPTIONS for o in options):
        raise SystemExit(f"unknown variant '{name}': a base {sorted(VARIANT_BASES)} + options {sorted(VARIANT_OPTIONS)}")
    compiled, mode = VARIANT_BASES[base]
    return compiled, mode, {VARIANT_OPTIONS[o]: True for o in options}


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--fused-sampling", action="store_true", help="fused Triton tri-plane sampling")
    parser.add_argument("--grad-checkpoint", action="store_true", help="gradient checkpointing of rendering")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variants measured one after another (overrides --compile/"
                             "--fused-sampling/--grad-checkpoint), e.g. eager,compile+fused,compile+fused+ckpt")
    parser.add_argument("--max-batch", action="store_true",
                        help="find the largest batch that trains without running out of GPU memory (eager)")
    parser.add_argument("--max-batch-limit", type=int, default=1024, help="upper end of the --max-batch search")
    parser.add_argument("--max-batch-unit", type=int, default=8, help="--max-batch granularity (a multiple of 4)")
    parser.add_argument("--max-batch-seconds", type=float, default=0,
                        help="stop the --max-batch search after this long and report the bracket found (0 = no limit)")
    parser.add_argument("--profile-variant", default=None,
                        help="with --variants: after timing this variant, profile its (warm) model as "
                             "profile_triplane.py does, into --profile-out")
    parser.add_argument("--profile-out", type=Path, default=Path("profile-triplane"))
    parser.add_argument("--steps", type=int, default=32, help="timed steps (rounded up to a multiple of r1_every)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    return parser


def build_config(args: argparse.Namespace):
    """The MVTriplane config the flags describe (fused sampling / checkpointing as given by the flags)."""
    cfg = PRESETS[args.preset]()
    if args.eg3d:
        cfg = eg3d_settings(cfg)
        if args.paper_arch:
            cfg = replace_fields(cfg, {"generator.extra_blocks": True, "generator.decoder_extra_layers": 2, "generator.plane_aggregation": "sum"})
    overrides = {"batch_size": args.batch, "rendering.neural_resolution": args.neural_resolution,
                 "rendering.output_resolution": args.output_resolution, "generator.plane_resolution": args.plane_resolution,
                 "multiview.views": args.views}
    cfg = replace_fields(cfg, {k: v for k, v in overrides.items() if v is not None})
    if args.samples:
        cfg = replace_fields(cfg, {"rendering.num_coarse": args.samples[0], "rendering.num_fine": args.samples[1]})
    if args.views and args.views > 1:
        cfg = replace_fields(cfg, {"multiview.start_step": 0})
    cfg = replace_fields(cfg, {"generator.channels_last": not args.no_channels_last, "multiview.diversity_every": 0, "multiview.auto": False, "discriminator.blur_fade_images": 1, "rendering.fused_sampling": args.fused_sampling, "rendering.grad_checkpoint": args.grad_checkpoint})
    cfg.validate()
    return cfg


def setup_device(args: argparse.Namespace) -> torch.device:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.benchmark = True
    # several compiled models in one process: do not fall back to eager after a few recompiles
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # the newer name, then the older one
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 64))
    return device


def make_method(cfg, args: argparse.Namespace, device: torch.device, compiled: bool = False,
                compile_mode: str | None = None) -> tuple[MVTriplane, list[Batch]]:
    """A fresh MVTriplane (seed 0) and 4 fake batches of the config's batch size."""
    resolution = cfg.rendering.output_resolution or 128
    info = DatasetInfo(resolution, 1000, 1000, 1, tuple(f"c{i}" for i in range(args.classes)), False, False, False)
    ctx = TrainContext(device, torch.bfloat16 if args.precision == "bf16" else None, False)
    torch.manual_seed(0)
    method = MVTriplane(cfg, info, ctx)
    if compiled:
        method.compile_networks(compile_mode)
    g = torch.Generator().manual_seed(0)
    batches = [fake_batch(cfg.batch_size, resolution, args.classes, device, g) for _ in range(4)]
    return method, batches


def release(device: torch.device) -> None:
    """Free what the previous model held (between variants / max-batch probes)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure(cfg, args: argparse.Namespace, device: torch.device, compiled: bool, compile_mode: str | None,
            variant: str | None) -> None:
    """Time ``args.steps`` training steps (after warm-up, which includes an R1 step) and report one row."""
    method, batches = make_method(cfg, args, device, compiled, compile_mode)
    n = cfg.batch_size
    steps = -(-args.steps // cfg.regularisation.r1_every) * cfg.regularisation.r1_every
    warm_start = time.perf_counter()
    for step in range(args.warmup):
        t0 = time.perf_counter()
        method.train_step(batches[step % 4], step)
        sync(device)
        # compilation happens here (minutes for the first compiled variant): show it in the log as it goes
        print(f"[{variant or 'run'}] warm-up step {step}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    warmup_s = time.perf_counter() - warm_start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
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
    fused = cfg.rendering.fused_sampling and (interpreter_on() or (device.type == "cuda" and triton_available()))
    flags = [f for f, on in ((", compiled", compiled), (f" ({compile_mode})", bool(compile_mode)),
                             (", fused sampling", fused), (", fused sampling unavailable: grid_sample",
                                                            cfg.rendering.fused_sampling and not fused),
                             (", grad checkpoint", cfg.rendering.grad_checkpoint),
                             (", resampling via interpolate/pad", compiled and not stylegan2.RESAMPLE_WITHOUT_SCATTER)) if on]
    resolution = cfg.rendering.output_resolution or 128
    what = (f"tri-plane GAN training step, {label}(planes {cfg.generator.plane_resolution}x{cfg.generator.plane_channels}x3, "
            f"render {cfg.rendering.neural_resolution}^2, {cfg.rendering.num_coarse}+{cfg.rendering.num_fine} samples, SR to {resolution}, "
            f"batch {n}, views {method.views_per_latent(0)}, {args.precision}{''.join(flags)})")
    record = {"images_per_s": round(images_per_s, 2), "s_per_kimg": round(1000 / images_per_s, 2),
              "peak_memory_gb": None if peak_gb is None else round(peak_gb, 2), "g_params": g_params,
              "d_params": d_params, "steps": steps, "warmup_s": round(warmup_s, 1), "variant": variant}
    memory = "" if peak_gb is None else f", peak {peak_gb:.1f} GB"
    figure = f"{images_per_s:.1f} images/s ({1000 / images_per_s:.1f} s/kimg){memory}, G {g_params / 1e6:.2f}M params"
    report(what, figure, device_name(device), record, write=not args.no_write)
    if variant is not None and variant == args.profile_variant:
        from profile_triplane import profile_method

        label = f"variant {variant}, {label.strip()}, {args.precision}"
        print(profile_method(method, batches, cfg, device, args.profile_out, label), flush=True)
    del method, batches


def is_out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or "ALLOC_FAILED" in text


def fits(cfg, args: argparse.Namespace, device: torch.device, batch: int) -> bool:
    """One training step at this batch (step 0: R1 and density regulariser included) without OOM."""
    try:
        method, batches = make_method(dataclasses.replace(cfg, batch_size=batch), args, device)
        method.train_step(batches[0], 0)
        sync(device)
        return True
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one
        if not is_out_of_memory(error):
            raise
        return False
    finally:
        method = batches = None  # noqa: F841 (drop the references before freeing the cache)
        release(device)


def max_batch(cfg, args: argparse.Namespace, device: torch.device) -> None:
    """Largest multiple of ``--max-batch-unit`` that fits, by doubling then bisection; one row."""
    unit = args.max_batch_unit
    start = time.perf_counter()
    lo, hi, probes = 0, None, 0
    batch = max(unit, cfg.batch_size // unit * unit)
    out_of_time = lambda: args.max_batch_seconds > 0 and time.perf_counter() - start > args.max_batch_seconds  # noqa: E731
    while hi is None and not out_of_time():  # grow until a batch fails (or the limit is reached)
        probes += 1
        if fits(cfg, args, device, batch):
            lo = batch
            if batch >= args.max_batch_limit:
                break
            batch = min(batch * 2, args.max_batch_limit // unit * unit)
        else:
            hi = batch
    while hi is not None and hi - lo > unit and not out_of_time():
        mid = (lo + hi) // 2 // unit * unit
        probes += 1
        if fits(cfg, args, device, mid):
            lo = mid
        else:
            hi = mid
    seconds = time.perf_counter() - start
    label = ("EG3D-equivalent " + ("+g+d " if args.paper_arch else "baseline ")) if args.eg3d else f"preset {args.preset} "
    flags = "".join(f for f, on in ((", fused sampling", cfg.rendering.fused_sampling), (", grad checkpoint", cfg.rendering.grad_checkpoint)) if on)
    what = (f"tri-plane GAN largest batch, {label}(planes {cfg.generator.plane_resolution}x{cfg.generator.plane_channels}x3, render "
            f"{cfg.rendering.neural_resolution}^2, {cfg.rendering.num_coarse}+{cfg.rendering.num_fine} samples, SR to {cfg.rendering.output_resolution or 128}, "
            f"{args.precision}, eager{flags}; one training step with R1)")
    if hi is None:
        note = " (search stopped at its time limit; more may fit)" if out_of_time() else " (the search limit; more may fit)"
    else:
        note = f" ({hi} does not fit{'; search stopped at its time limit' if hi - lo > unit else ''})"
    figure = f"{lo} images per step{note}, {probes} probes in {seconds:.0f} s"
    if lo == 0:
        figure = f"not even batch {unit} fits"
    report(what, figure, device_name(device), {"max_batch": lo, "first_failing": hi, "probes": probes},
           write=not args.no_write)


def main() -> None:
    args = build_parser().parse_args()
    device = setup_device(args)
    cfg = build_config(args)
    if args.max_batch:
        max_batch(cfg, args, device)
        return
    if not args.variants:
        measure(cfg, args, device, args.compile, None, None)
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    parsed = [parse_variant(v) for v in variants]  # reject a typo before anything runs
    failed = 0
    for variant, (compiled, mode, overrides) in zip(variants, parsed):
        options = {"rendering.fused_sampling": False, "rendering.grad_checkpoint": False, **overrides}
        stylegan2.RESAMPLE_WITHOUT_SCATTER = not options.pop("interp", False)  # a module switch, not a config field
        try:
            measure(replace_fields(cfg, options), args, device, compiled, mode, variant)
        except Exception as error:  # one failing variant must not cost the others their rows
            failed += 1
            traceback.print_exc()
            print(json.dumps({"variant": variant, "error": f"{type(error).__name__}: {str(error)[:300]}"}), flush=True)
        if compiled:
            torch._dynamo.reset()  # the next variant compiles its own model from scratch (FX graph cache helps)
        release(device)
    if failed:
        raise SystemExit(f"{failed} of {len(variants)} variants failed")


if __name__ == "__main__":
    main()
