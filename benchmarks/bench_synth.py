"""`unflat dataset synth` throughput: shapes/s of run_synth (generate, render, write, ground-truth meshes).

  python benchmarks/bench_synth.py [--num-shapes 64] [--resolution 64] [--views 1] [--workers 1 0]

Each worker count is timed end to end (process start-up included); 0 = automatic (one process per core).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, load_note, report  # noqa: E402

from unflat.data.commands import SynthConfig, auto_workers, run_synth  # noqa: E402
from unflat.data.format import open_dataset  # noqa: E402
from unflat.render.pyrender_backend import choose_platform  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-shapes", type=int, default=64, help="shapes per category")
    parser.add_argument("--categories", nargs="+", default=["chair", "car"])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 0])
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--verify", action="store_true",
                        help="open each written dataset with content-hash verification and check its image count")
    args = parser.parse_args()
    platform = choose_platform()
    shapes = args.num_shapes * len(args.categories)
    results = {}
    verified = ""
    tmp = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        for workers in args.workers:
            cfg = SynthConfig(out=tmp / f"w{workers}", category=tuple(args.categories), num_shapes=args.num_shapes,
                              resolution=args.resolution, views_per_shape=args.views, workers=workers)
            start = time.perf_counter()
            run_synth(cfg)
            seconds = time.perf_counter() - start
            used = auto_workers(workers, shapes * args.views)
            results[f"shapes_per_s_workers_{used}"] = round(shapes / seconds, 2)
            results[f"seconds_workers_{used}"] = round(seconds, 3)
            if args.verify:  # the whole dataset is there and intact (every file hashed against the manifest)
                count = len(open_dataset(cfg.out, verify_hashes=True))
                if count != shapes * args.views:
                    raise SystemExit(f"{cfg.out}: {count} images, expected {shapes * args.views}")
                verified = f", {count:,} images verified"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figure = ", ".join(f"{w} workers: {results[f'shapes_per_s_workers_{w}']:.1f} shapes/s "
                       f"({results[f'seconds_workers_{w}']:.0f} s for {shapes * args.views:,} images)"
                       for w in (k.rsplit("_", 1)[1] for k in results if k.startswith("shapes_per_s")))
    figure += verified
    device = device_name("cuda" if torch.cuda.is_available() else "cpu")
    figure += load_note()
    report(f"dataset synth ({'+'.join(args.categories)}, {args.resolution}px, {args.views} view(s), supersample 2)", figure,
           f"{device}, GL {platform}", results, write=not args.no_write)


if __name__ == "__main__":
    main()
