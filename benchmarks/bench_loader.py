"""Data loader throughput: images/s from unflat.data.loader.iterate_batches at 128x128.

  python benchmarks/bench_loader.py [--images 2048] [--batch 64] [--steps 64] [--workers 0 2]

Writes a temporary dataset of random uint8 images with masks and depth (the loader's speed does
not depend on content), then times the batches of ``--steps`` steps, delivered as float tensors
in [-1,1] on the device (CUDA when available), for each worker count.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, load_note, report, sync  # noqa: E402

from unflat.cameras import Cameras  # noqa: E402
from unflat.data.format import DatasetWriter  # noqa: E402
from unflat.data.loader import iterate_batches  # noqa: E402


def make_dataset(out: Path, images: int, resolution: int) -> Path:
    rng = np.random.default_rng(0)
    cameras = Cameras.sample_orbit(images, torch.Generator().manual_seed(0), radius=3.0, fov_deg=40.0)
    with DatasetWriter(out, resolution, ["a", "b"], kind="bench", with_masks=True, with_depth=True) as writer:
        for i in range(images):
            writer.add(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8), cameras[i], class_id=i % 2,
                       mask=rng.integers(0, 256, (resolution, resolution), dtype=np.uint8),
                       depth=rng.random((resolution, resolution), dtype=np.float32) + 2)
    return out


def images_per_second(root: Path, batch: int, steps: int, workers: int, device: torch.device) -> float:
    warm = 4
    count = 0
    start = time.perf_counter()
    for step, b in enumerate(iterate_batches(root, 0, steps + warm, batch, seed=0, device=device, num_workers=workers)):
        if step == warm - 1:
            sync(device)
            start = time.perf_counter()
        elif step >= warm:
            count += len(b)
    sync(device)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tmp = Path(tempfile.mkdtemp(prefix="bench-loader-"))
    try:
        root = make_dataset(tmp / "ds", args.images, args.resolution)
        results = {f"images_per_s_workers_{w}": round(images_per_second(root, args.batch, args.steps, w, device), 1)
                   for w in args.workers}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figure = ", ".join(f"{w} workers: {results[f'images_per_s_workers_{w}']:.0f} images/s" for w in args.workers)
    figure += load_note()
    report(f"data loader, {args.resolution}px + masks + depth, batch {args.batch}", figure, device_name(device),
           results, write=not args.no_write)


if __name__ == "__main__":
    main()
