"""Write the photos that scikit-image, scikit-learn and matplotlib ship (whichever are installed) as PNGs,
for `unflat reconstruct` on real photos without masks:

    PYTHONPATH=src python benchmarks/write_sample_photos.py data/photos
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def photos() -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    try:
        from skimage import data

        for name in ("astronaut", "chelsea", "coffee", "rocket"):
            found[name] = getattr(data, name)()
        found["motorcycle"] = data.stereo_motorcycle()[0]
    except Exception as exc:  # noqa: BLE001  (a missing optional package or data file)
        print(f"scikit-image photos skipped: {exc}", file=sys.stderr)
    try:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for fname, image in zip(bunch.filenames, bunch.images):
            found[Path(fname).stem] = image
    except Exception as exc:  # noqa: BLE001
        print(f"scikit-learn photos skipped: {exc}", file=sys.stderr)
    try:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            found["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    except Exception as exc:  # noqa: BLE001
        print(f"matplotlib photos skipped: {exc}", file=sys.stderr)
    return found


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "data/photos")
    out.mkdir(parents=True, exist_ok=True)
    for name, image in photos().items():
        Image.fromarray(np.asarray(image)[..., :3].astype(np.uint8)).save(out / f"{name}.png")
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
