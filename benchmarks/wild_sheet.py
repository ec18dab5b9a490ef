"""Sample sheet of the wild-vs-clean ablation (issue #23): a row of training images per dataset, then a row of
samples per arm (the run's last checkpoint, fixed seeds), each with the arm's steps and COV/MMD in its label, and
under it the same samples' volume opacity (what the tri-plane box paints; black where the far background shows).

  python benchmarks/wild_sheet.py ABL_DIR --arms mv-clean mv-wild ... --out sheet.png [--device cuda] [--num 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def dataset_row(data: Path, num: int) -> list[np.ndarray]:
    from unflat.data.format import open_dataset

    ds = open_dataset(data)
    picks = np.linspace(0, len(ds) - 1, num).astype(int)
    return [np.asarray(ds.images[i]) for i in picks]


def sample_rows(run: Path, num: int, device: str) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
    """The run's samples (fixed seed) and, for the same latents and cameras, the volume's opacity (white = the
    tri-plane box paints the pixel; black = the far background shows through)."""
    import torch

    from unflat.runs import load_run

    try:
        method = load_run(run, device).method
    except Exception as error:  # noqa: BLE001 - an arm that failed to train gets an empty row, not a crash
        print(f"{run}: {error}")
        return [None] * num, [None] * num
    with torch.no_grad():
        samples = method.sample(num, seed=0)
    images = [((im.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy() for im in samples.images]
    masks = [(m[0].clamp(0, 1) * 255).round().byte().cpu().numpy()[..., None].repeat(3, -1) for m in samples.masks]
    return images, masks


def arm_label(root: Path, arm: str) -> str:
    try:
        summary = json.loads((root / arm / "summary.json").read_text())
    except (OSError, ValueError):
        summary = {}
    m = summary.get("metrics") or {}
    cov, mmd, fid = m.get("coverage"), m.get("mmd"), m.get("fid")
    figures = f"COV {cov:.2f} MMD {mmd:.4f}" if cov is not None and mmd is not None else "no shape metrics"
    if fid is not None:
        figures += f"\nFID {fid:.0f}"
    return f"{arm}\n{summary.get('steps_reached', '?')} steps\n{figures}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--arms", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num", type=int, default=8)
    args = parser.parse_args()
    from unflat.export.sheet import make_sheet

    rows = [(f"{name} data\n(training images)", dataset_row(args.root / name, args.num)) for name in ("clean", "wild")]
    for arm in args.arms:
        images, opacity = sample_rows(args.root / arm / "run", args.num, args.device)
        rows += [(arm_label(args.root, arm), images), (f"{arm}\nvolume opacity", opacity)]
    make_sheet(args.out, rows, header=[f"sample {i}" for i in range(args.num)], side=96)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
