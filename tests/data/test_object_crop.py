"""`unflat dataset images --crop object`: an off-centre object on a textured background comes out centred, with a
mask that covers it; photos without an object are skipped and reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from unflat.data.backgrounds import procedural_background
from unflat.data.commands import ImagesConfig, run_images
from unflat.data.format import open_dataset

R = 48
OBJECT = (200, 30, 40)


def _planted(rng: np.random.Generator, width: int, height: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """A red disc at ``centre`` (x, y in pixels) on a striped two-tone texture."""
    texture = procedural_background(rng, max(width, height), "stripes")[:height, :width].copy()
    texture = (0.5 * texture + 0.5 * np.array([120, 140, 110])).astype(np.uint8)  # muted, unlike the object
    y, x = np.mgrid[0:height, 0:width] + 0.5
    texture[np.hypot(x - centre[0], y - centre[1]) <= radius] = OBJECT
    return texture


def test_off_centre_object_is_cropped_centred_and_masked(tmp_path: Path) -> None:
    src = tmp_path / "photos" / "thing"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    places = [((50, 110), 22), ((150, 40), 18), ((70, 45), 26)]  # off centre, varying size
    for k, (centre, radius) in enumerate(places):
        Image.fromarray(_planted(rng, 200, 150, centre, radius)).save(src / f"p{k}.png")
    Image.fromarray(np.full((150, 200, 3), 128, np.uint8)).save(src / "plain.png")  # nothing to find
    margin = 0.15
    out = run_images(ImagesConfig(src=tmp_path / "photos", out=tmp_path / "ds", resolution=R, workers=1,
                                  margin=margin, segmenter="colour"))
    dataset = open_dataset(out, verify_hashes=True)
    assert dataset.info.num_images == len(places) and dataset.info.has_masks and dataset.info.background == "wild"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["skipped"] == {"no object found": 1}
    y, x = np.mgrid[0:R, 0:R] + 0.5
    expected = np.hypot(x - R / 2, y - R / 2) <= R / 2 / (1 + 2 * margin)  # the disc, centred, with the margin
    for i in range(len(places)):
        mask = dataset.masks[i].astype(np.float32) / 255
        cy, cx = (np.array(np.nonzero(mask > 0.5)).mean(1) + 0.5)
        assert abs(cx - R / 2) < 1.5 and abs(cy - R / 2) < 1.5  # centred
        iou = ((mask > 0.5) & expected).sum() / ((mask > 0.5) | expected).sum()
        assert iou > 0.85, f"photo {i}: the mask does not cover the object (IoU {iou:.2f})"
        inside = dataset.images[i][expected & (np.hypot(x - R / 2, y - R / 2) < R / 4)]
        assert np.abs(inside.astype(int) - OBJECT).max() < 40  # the crop shows the object there
        assert mask[~expected].mean() < 0.05  # and the mask stays off the textured background


def test_center_and_pad_keep_working_without_masks(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(_planted(np.random.default_rng(1), 120, 80, (30, 40), 15)).save(src / "a.png")
    for crop in ("center", "pad"):
        dataset = open_dataset(run_images(ImagesConfig(src=src, out=tmp_path / crop, resolution=R, workers=1, crop=crop)))
        assert dataset.info.num_images == 1 and not dataset.info.has_masks
