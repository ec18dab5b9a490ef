"""Weight-free object segmentation (`dataset images --crop object`, `reconstruct`) against exact masks on wild data.

  python benchmarks/bench_wild_segmentation.py [--num-shapes 20] [--resolution 96] [--methods colour grabcut]

`unflat dataset synth --wild` composites the embedded shapes onto packaged photos and procedural textures with
exact masks, so the segmentation of unflat.data.segment can be scored: IoU with the true mask, per background
kind (photo / procedural) and per category. Methods that cannot run here (grabcut without OpenCV) are left out.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, load_note, report  # noqa: E402

from unflat.data.commands import SynthConfig, run_synth  # noqa: E402
from unflat.data.format import open_dataset  # noqa: E402
from unflat.data.segment import cv2_available, segment_object  # noqa: E402

CATEGORIES = ("chair", "table", "sofa", "mug", "car", "lamp")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-shapes", type=int, default=20, help="shapes per category and background kind")
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--methods", nargs="+", default=["colour", "grabcut"])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    methods = [m for m in args.methods if m != "grabcut" or cv2_available()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-wild-seg-"))
    record: dict = {}
    try:
        for kind in ("photos", "procedural"):
            data = open_dataset(run_synth(SynthConfig(
                out=tmp / kind, category=CATEGORIES, num_shapes=args.num_shapes, resolution=args.resolution,
                seed=args.seed, wild=True, wild_backgrounds=kind, workers=1)))
            labels = np.asarray(data.labels)
            for method in methods:
                ious = np.array([_iou(np.asarray(data.masks[i]) > 127,
                                      segment_object(np.asarray(data.images[i]), method=method) > 0.5)
                                 for i in range(len(data))])
                record[f"{method}_{kind}_iou_mean"] = round(float(ious.mean()), 3)
                record[f"{method}_{kind}_iou_over_0.7"] = round(float((ious > 0.7).mean()), 3)
                for c, name in enumerate(CATEGORIES):
                    record[f"{method}_{kind}_{name}"] = round(float(ious[labels == c].mean()), 3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figure = "; ".join(
        f"{m} on {k}: IoU {record[f'{m}_{k}_iou_mean']:.2f} ({100 * record[f'{m}_{k}_iou_over_0.7']:.0f} % > 0.7; "
        + ", ".join(f"{n} {record[f'{m}_{k}_{n}']:.2f}" for n in CATEGORIES) + ")"
        for m in methods for k in ("photos", "procedural"))
    what = (f"weight-free segmentation vs exact masks, dataset synth --wild ({len(CATEGORIES)} categories x "
            f"{args.num_shapes} shapes per background kind, {args.resolution}px)")
    report(what, figure, device_name("cpu") + load_note(), record, write=not args.no_write)


if __name__ == "__main__":
    main()
