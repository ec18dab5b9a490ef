"""Metric throughput: domain-backbone feature extraction (images/s), batched Chamfer (pairs/s), and
the Frechet distance of 2048-d statistics (ours vs torchmetrics, same run, same inputs).

  python benchmarks/bench_metrics.py [--device cuda] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, report, timed  # noqa: E402

from unflat.metrics.distribution import frechet_distance  # noqa: E402
from unflat.metrics.shapes import pairwise_chamfer  # noqa: E402
from unflat.nets.domain_backbone import DomainBackbone, DomainBackboneConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--points", type=int, default=2048, help="points per cloud for Chamfer")
    parser.add_argument("--clouds", type=int, default=8, help="clouds per side (pairs = clouds^2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    # Other processes on a shared machine slow CPU figures down: record the load with them.
    name = f"{device_name(device)}, load avg {os.getloadavg()[0]:.1f}"
    write = not args.no_write

    # Feature extraction: a randomly initialised network has the same cost as a trained one.
    model = DomainBackbone(DomainBackboneConfig()).to(device).eval()
    images = torch.rand(args.batch_size, 3, 64, 64, device=device)
    with torch.no_grad():
        seconds = timed(lambda: model(images), device, args.repeats)
    rate = args.batch_size / seconds
    report(
        "metrics: domain-backbone features (64 px, 256-d)", f"{rate:.0f} images/s (batch {args.batch_size})", name,
        {"images_per_s": rate, "batch_size": args.batch_size}, write,
    )  # fmt: skip

    g = torch.Generator().manual_seed(0)
    a = torch.rand(args.clouds, args.points, 3, generator=g).to(device)
    b = torch.rand(args.clouds, args.points, 3, generator=g).to(device)
    seconds = timed(lambda: pairwise_chamfer(a, b), device, args.repeats)
    pairs = args.clouds**2 / seconds
    report(
        f"metrics: Chamfer-L2 pairs ({args.points} points each)", f"{pairs:.1f} pairs/s", name,
        {"pairs_per_s": pairs, "points": args.points, "pairs": args.clouds**2}, write,
    )  # fmt: skip

    from torchmetrics.image.fid import _compute_fid

    dim = 2048
    x = torch.randn(4 * dim, dim, generator=g, dtype=torch.float64)
    y = x[: 2 * dim] * 1.1 + 0.1
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = torch.cov(x.T), torch.cov(y.T)
    ours = timed(lambda: frechet_distance(mu1, s1, mu2, s2), "cpu", 1, warmup=0)
    lib = timed(lambda: _compute_fid(mu1, s1, mu2, s2), "cpu", 1, warmup=0)
    value_ours, value_lib = frechet_distance(mu1, s1, mu2, s2), float(_compute_fid(mu1, s1, mu2, s2))
    report(
        "metrics: Frechet distance of 2048-d stats, unflat (eigh) vs torchmetrics (eigvals)",
        f"{ours:.2f} s vs {lib:.2f} s (ratio {lib / ours:.2f}x); values {value_ours:.6f} vs {value_lib:.6f}",
        f"{device_name('cpu')}, load avg {os.getloadavg()[0]:.1f}",
        {"unflat_s": ours, "torchmetrics_s": lib, "fid_unflat": value_ours, "fid_torchmetrics": value_lib},
        write,
    )


if __name__ == "__main__":
    main()
