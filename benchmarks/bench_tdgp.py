"""3DGP training step with and without knowledge distillation: the distillation overhead.

Three variants, timed in the same process on the same batch:

* ``no_distill``: every other 3DGP component on (RGB-D D, depth adaptor, camera generator, patches);
* ``distill``: plus the distillation head, teacher features read from the per-dataset cache (how
  training runs: the paper's "about 1% overhead" setting);
* ``distill_teacher_per_step``: teacher features computed every step by a ResNet-50 (random weights:
  only its cost matters here), i.e. what the cache saves.

  python benchmarks/bench_tdgp.py                                # paper preset (GPU)
  python benchmarks/bench_tdgp.py --preset tiny --device cpu     # smoke test
  python benchmarks/bench_tdgp.py --batch-size 32 --no-write

Variants are timed in interleaved rounds (median reported), each a whole number of R1 intervals so lazy
R1 is amortised exactly. Prints one JSON
line (and appends a BENCHMARKS.md row unless --no-write).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, report, sync  # noqa: E402

from unflat.config import replace_fields
from unflat.cameras import Cameras  # noqa: E402
from unflat.data.format import DatasetInfo  # noqa: E402
from unflat.data.loader import Batch  # noqa: E402
from unflat.engine.trainer import make_context  # noqa: E402
from unflat.losses.distillation import FeatureTeacher  # noqa: E402
from unflat.methods.registry import get_method  # noqa: E402
from unflat.pretrained import ResNet50  # noqa: E402


def fake_batch(n: int, resolution: int, num_classes: int, device: torch.device, g: torch.Generator) -> Batch:
    """Random images with exact sphere-like depth (content does not change the cost of a step)."""
    images = (torch.rand(n, 3, resolution, resolution, generator=g) * 2 - 1).to(device)
    cams = Cameras.sample_orbit(n, g, radius=2.0).to(device)
    depth = (1.5 + torch.rand(n, 1, resolution, resolution, generator=g)).to(device)
    ids = torch.randint(num_classes, (n,), generator=g).to(device)
    return Batch(images, cams, ids, ids.clone(), masks=torch.ones_like(depth), depth=depth)


def build_variant(spec, cfg, info, batch: Batch, variant: str):
    distill = variant != "no_distill"
    cfg = replace_fields(cfg, {"distillation.enabled": distill, "distillation.feature_dim": 2048 if distill else 0})
    ctx = make_context(cfg)
    torch.manual_seed(0)
    method = spec.method_cls(cfg, info, ctx)
    method._data_ready = True  # no dataset on disk: depth comes from the batch, features as below
    if distill:
        teacher = FeatureTeacher(ResNet50().to(ctx.device), 2048, "random-resnet50-timing", 224, "imagenet")
        method.teacher = teacher
        if variant == "distill":
            cached = teacher(batch.images).detach()
            method.teacher_features = lambda b: cached  # what the cache returns: rows of precomputed features
    return method


def time_variants(spec, cfg, info, batch: Batch, variants: tuple[str, ...], steps: int, warmup: int,
                  rounds: int) -> dict:
    """Build every variant, warm each up, then time them in interleaved rounds (A B C A B C ...) so load
    changes on a shared machine hit all variants alike; report the median seconds per step."""
    device = make_context(cfg).device
    methods = {v: build_variant(spec, cfg, info, batch, v) for v in variants}
    r1 = cfg.regularisation.r1_every if cfg.regularisation.r1_gamma > 0 else 1
    per_round = max(r1, int(math.ceil(steps / rounds / r1)) * r1)  # whole R1 periods: R1 amortised exactly
    counters = dict.fromkeys(variants, 0)

    def run(v: str, n: int) -> None:
        for _ in range(n):
            methods[v].set_learning_rates(counters[v])
            methods[v].train_step(batch, counters[v])
            counters[v] += 1

    for v in variants:
        run(v, warmup)
    times: dict[str, list[float]] = {v: [] for v in variants}
    peaks = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for v in variants:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync(device)
            start = time.perf_counter()
            run(v, per_round)
            sync(device)
            times[v].append((time.perf_counter() - start) / per_round)
            if device.type == "cuda":
                peaks[v] = max(peaks[v], torch.cuda.max_memory_allocated() / 2**30)
    out = {}
    for v in variants:
        seconds = statistics.median(times[v])
        out[v] = {"s_per_step": seconds, "images_per_s": cfg.batch_size / seconds, "peak_gb": round(peaks[v], 2),
                  "steps": per_round * rounds, "round_s_per_step": [round(t, 5) for t in times[v]]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=["tiny", "small", "paper"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--resolution", type=int, default=256, help="dataset (full-frame) resolution")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds (median reported)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()

    spec = get_method("3dgp")
    cfg = dataclasses.replace(spec.config(args.preset), device=args.device, precision=args.precision, data=None)
    if args.batch_size:
        cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    resolution = args.resolution if args.preset == "paper" else 16 if args.preset == "tiny" else 32
    classes = args.classes if args.preset == "paper" else 2
    info = DatasetInfo(resolution=resolution, num_images=0, num_shapes=0, views_per_shape=1,
                       class_names=tuple(f"c{i}" for i in range(classes)), has_masks=True, has_depth=True,
                       has_meshes=False)
    device = make_context(cfg).device
    batch = fake_batch(cfg.batch_size, resolution, classes, device, torch.Generator().manual_seed(0))
    results = time_variants(spec, cfg, info, batch, ("no_distill", "distill", "distill_teacher_per_step"),
                            args.steps, args.warmup, args.rounds)
    base = results["no_distill"]["s_per_step"]
    overhead = {v: round(100 * (r["s_per_step"] / base - 1), 2) for v, r in results.items() if v != "no_distill"}
    figure = (f"{results['no_distill']['images_per_s']:.1f} img/s without distillation, "
              f"{results['distill']['images_per_s']:.1f} with (cached targets, overhead {overhead['distill']:+.1f}%), "
              f"{results['distill_teacher_per_step']['images_per_s']:.1f} with a ResNet-50 per step "
              f"({overhead['distill_teacher_per_step']:+.1f}%)")
    record = {"preset": args.preset, "batch_size": cfg.batch_size, "resolution": resolution,
              "patch_resolution": cfg.rendering.neural_resolution, "precision": args.precision,
              "results": results, "overhead_percent": overhead}
    report("3dgp step: distillation overhead", figure, device_name(device), record, write=not args.no_write)


if __name__ == "__main__":
    main()
