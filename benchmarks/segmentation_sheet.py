"""Photo segmentation without masks, side by side: photo | weight-free fallback | IS-Net, with seconds per photo.

    PYTHONPATH=src python benchmarks/write_sample_photos.py data/photos
    PYTHONPATH=src python benchmarks/segmentation_sheet.py data/photos docs/images/segmentation-isnet-vs-fallback.png

IS-Net needs `bash scripts/setup.sh segment` (onnxruntime and the weights); the fallback is GrabCut when
OpenCV is installed, else the border-colour method. Timings and mask areas: benchmarks/results/<sheet name>.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from unflat.data.segment import cv2_available, segment_object
from unflat.data.segment_isnet import find_model

TILE = 224


def overlay(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The object in its colours, the background dimmed and tinted blue, the mask's outline in yellow."""
    from scipy import ndimage

    fg = mask > 0.5
    dim = rgb * 0.3 + np.array([0, 20, 60])
    out = np.where(fg[..., None], rgb, dim)
    edge = fg ^ ndimage.binary_erosion(fg, iterations=max(1, round(max(rgb.shape[:2]) / 250)))
    out[edge] = (255, 230, 0)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def tile(image: Image.Image, label: str) -> Image.Image:
    image = image.copy()
    image.thumbnail((TILE, TILE))
    canvas = Image.new("RGB", (TILE, TILE + 18), (255, 255, 255))
    canvas.paste(image, ((TILE - image.width) // 2, 18 + (TILE - image.height) // 2))
    ImageDraw.Draw(canvas).text((4, 3), label, fill=(0, 0, 0))
    return canvas


def main() -> None:
    photos = sorted(Path(sys.argv[1] if len(sys.argv) > 1 else "data/photos").glob("*.png"))
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/images/segmentation-isnet-vs-fallback.png")
    fallback = "grabcut" if cv2_available() else "colour"
    model = find_model()
    if model is None:
        sys.exit("IS-Net is not installed: bash scripts/setup.sh segment")
    segment_object(np.zeros((32, 32, 3), np.uint8), method="isnet")  # load (and sha256-check) the model once, untimed
    rows, timings = [], {}
    for path in photos:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        t0 = time.perf_counter()
        weak = segment_object(rgb, method=fallback)
        t1 = time.perf_counter()
        strong = segment_object(rgb, method="isnet")
        t2 = time.perf_counter()
        timings[path.stem] = {"size": list(rgb.shape[:2]), f"{fallback}_s": round(t1 - t0, 2), "isnet_s": round(t2 - t1, 2),
                              f"{fallback}_area": round(float(weak.mean()), 3), "isnet_area": round(float(strong.mean()), 3)}
        print(path.stem, timings[path.stem], flush=True)
        rows.append([tile(Image.fromarray(rgb), path.stem), tile(overlay(rgb, weak), f"{fallback} {t1 - t0:.1f} s"),
                     tile(overlay(rgb, strong), f"IS-Net ({model.stem}) {t2 - t1:.1f} s")])
    groups = 2  # two photos per sheet row: photo | fallback | IS-Net, twice
    per_row = 3 * groups
    height = (len(rows) + groups - 1) // groups
    sheet = Image.new("RGB", (per_row * TILE, height * (TILE + 18)), (255, 255, 255))
    for k, row in enumerate(rows):
        for j, image in enumerate(row):
            sheet.paste(image, (((k % groups) * 3 + j) * TILE, (k // groups) * (TILE + 18)))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    record = {"command": "PYTHONPATH=src python " + " ".join(sys.argv), "fallback": fallback,
              "isnet_model": json.loads(model.with_suffix(".json").read_text())["source"] + " " + model.stem,
              "photos": timings}
    results = Path("benchmarks/results") / f"{out.stem}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(record, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
