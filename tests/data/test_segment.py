"""Weight-free segmentation of photos without masks: a planted object on a textured background."""

from __future__ import annotations

import numpy as np
import pytest

from unflat.data.segment import cv2_available, segment_object


def planted_scene(size: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A shaded orange blob with a dark stripe, planted on a noisy green/blue-grey checker-and-stripe
    background: (uint8 [S,S,3], true mask bool [S,S])."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    checker = ((np.floor(x * 8) + np.floor(y * 8)) % 2)[..., None]
    stripes = (0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.5 * y) * 6))[..., None]
    bg = checker * np.array([0.35, 0.55, 0.35]) + (1 - checker) * np.array([0.45, 0.5, 0.6])
    bg = bg * (0.85 + 0.15 * stripes) + rng.normal(0, 0.03, (size, size, 3))
    # the object: an irregular blob (ellipse + a bump), shaded from the top left, with a dark band
    r = np.sqrt(((x - 0.52) / 0.28) ** 2 + ((y - 0.55) / 0.2) ** 2)
    bump = np.sqrt(((x - 0.62) / 0.12) ** 2 + ((y - 0.33) / 0.12) ** 2)
    mask = (r < 1) | (bump < 1)
    shade = np.clip(1.1 - 0.6 * (x - 0.3) - 0.4 * (y - 0.35), 0.5, 1.1)[..., None]
    obj = np.array([0.92, 0.45, 0.12]) * shade
    obj = np.where((np.abs(y - 0.6) < 0.03)[..., None], obj * 0.35, obj) + rng.normal(0, 0.02, (size, size, 3))
    img = np.where(mask[..., None], obj, bg)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("seed", [0, 1])
def test_colour_fallback_finds_a_planted_object_on_a_textured_background(seed):
    img, truth = planted_scene(seed=seed)
    mask = segment_object(img, method="colour")
    assert mask.shape == truth.shape and mask.dtype == np.float32
    assert iou(mask > 0.5, truth) > 0.8


def test_padding_outside_the_content_box_is_background():
    img, truth = planted_scene(200)
    padded = np.full((300, 300, 3), 255, np.uint8)
    padded[50:250, 50:250] = img
    mask = segment_object(padded, content=(50, 50, 250, 250), method="colour")
    assert mask[:50].sum() == 0 and mask[250:].sum() == 0
    assert iou(mask[50:250, 50:250] > 0.5, truth) > 0.8


def test_a_plain_image_is_all_object():
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert segment_object(flat, method="colour").all()


@pytest.mark.skipif(not cv2_available(), reason="OpenCV is not installed")
def test_grabcut_finds_the_planted_object():
    img, truth = planted_scene()
    assert iou(segment_object(img, method="grabcut") > 0.5, truth) > 0.8


def test_lab_conversion_and_otsu_match_scikit_image():
    skimage = pytest.importorskip("skimage")
    from skimage.color import rgb2lab
    from skimage.filters import threshold_otsu

    from unflat.data.segment import otsu_threshold, rgb_to_lab

    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.abs(rgb_to_lab(rgb) - rgb2lab(rgb)).max() < 0.05
    values = np.concatenate([np.random.default_rng(1).normal(0, 1, 500), np.random.default_rng(2).normal(6, 1, 300)])
    assert abs(otsu_threshold(values) - threshold_otsu(values)) < 0.1
