"""Weight-free object segmentation for photos reconstructed without a mask.

``segment_object(rgb)`` returns the mask of the main object of a photo whose border shows
background (as product shots and the training renders do):

- ``grabcut`` (when OpenCV is importable): OpenCV's GrabCut initialised with the image border
  as sure background and the rest as probable foreground.
- ``colour`` (always available; scikit-image + SciPy): the border's colours, clustered (k-means
  in CIELAB), model the background; pixels far from every background cluster (Otsu threshold on the
  distance) seed the foreground; then a few GrabCut-like rounds re-label each pixel by whether it
  is nearer the foreground's or the background's colour clusters, smoothed, with holes filled and
  only the largest connected component kept.

``auto`` takes ``grabcut`` when OpenCV is there, else ``colour``. Neither needs weights; both
work on a downscaled copy (``work_side`` pixels) and return a mask of the input's size. A mask
given by the user (``unflat reconstruct --masks``) always wins over these.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np

Method = Literal["auto", "grabcut", "colour"]


def cv2_available() -> bool:
    try:
        return importlib.util.find_spec("cv2") is not None
    except (ImportError, ValueError):
        return False


def segment_object(rgb: np.ndarray, content: tuple[int, int, int, int] | None = None, method: Method = "auto",
                   work_side: int = 160, border: int = 3) -> np.ndarray:
    """rgb uint8 [H,W,3] -> mask float32 [H,W] in {0,1} of the main object.

    content: (top, left, bottom, right) of the real image when ``rgb`` is padded (outside it the mask is 0);
    method: see the module doc; border: width (in work pixels) of the frame taken as background.
    When nothing stands out from the border, the whole content box is returned.
    """
    from PIL import Image

    height, width = rgb.shape[:2]
    top, left, bottom, right = content or (0, 0, height, width)
    real = np.ascontiguousarray(rgb[top:bottom, left:right])
    scale = work_side / max(real.shape[:2])
    small_size = (max(8, round(real.shape[1] * scale)), max(8, round(real.shape[0] * scale)))
    small = np.asarray(Image.fromarray(real).resize(small_size, Image.BILINEAR))
    if method == "auto":
        method = "grabcut" if cv2_available() else "colour"
    if method == "grabcut":
        fg = _grabcut(small, border)
    elif method == "colour":
        fg = _colour_segment(small, border)
    else:
        raise ValueError(f"unknown segmentation method {method!r}")
    if fg.mean() < 0.002:  # nothing found: the whole image is the object
        fg[:] = True
    full = np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).resize((real.shape[1], real.shape[0]), Image.BILINEAR))
    mask = np.zeros((height, width), np.float32)
    mask[top:bottom, left:right] = full > 127
    return mask


def _largest_component(fg: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, count = ndimage.label(fg)
    if count <= 1:
        return fg
    sizes = ndimage.sum(fg, labels, index=np.arange(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


def _clean(fg: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    fg = ndimage.binary_opening(fg, iterations=1)
    fg = ndimage.binary_closing(fg, iterations=2)
    fg = _largest_component(fg)
    return ndimage.binary_fill_holes(fg)


def _kmeans(points: np.ndarray, k: int, iterations: int = 10, seed: int = 0) -> np.ndarray:
    """Centres [k,C] of ``points`` [N,C] (k-means++-like farthest-point initialisation, Lloyd iterations)."""
    rng = np.random.default_rng(seed)
    k = min(k, len(points))
    centres = [points[rng.integers(len(points))]]
    for _ in range(k - 1):
        d = np.min(((points[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(points[int(np.argmax(d))])
    centres = np.array(centres, np.float64)
    for _ in range(iterations):
        assign = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if (assign == j).any():
                centres[j] = points[assign == j].mean(0)
    return centres


def _nearest(pixels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.sqrt(((pixels[:, None] - centres[None]) ** 2).sum(-1).min(1))


def _colour_segment(small: np.ndarray, border: int, rounds: int = 3) -> np.ndarray:
    from scipy import ndimage
    from skimage.color import rgb2lab
    from skimage.filters import threshold_otsu

    lab = rgb2lab(small).astype(np.float64)
    h, w = lab.shape[:2]
    ring = np.zeros((h, w), bool)
    ring[:border], ring[-border:], ring[:, :border], ring[:, -border:] = True, True, True, True
    pixels = lab.reshape(-1, 3)
    bg_centres = _kmeans(lab[ring], 6)
    dist = _nearest(pixels, bg_centres).reshape(h, w)
    dist = ndimage.uniform_filter(dist, 3)
    if dist.max() - dist.min() < 1e-6:
        return np.zeros((h, w), bool)
    threshold = max(threshold_otsu(dist), 8.0)  # at least ~8 Lab units (a visible colour difference)
    fg = _clean((dist > threshold) & ~ring)
    for _ in range(rounds):  # GrabCut-like: re-label by nearer colour model, then smooth and clean
        if fg.sum() < 16 or (~fg).sum() < 16:
            break
        fg_centres = _kmeans(lab[fg], 6)
        bg_centres = _kmeans(lab[~fg], 8)
        d_fg = _nearest(pixels, fg_centres).reshape(h, w)
        d_bg = _nearest(pixels, bg_centres).reshape(h, w)
        score = ndimage.uniform_filter(d_bg - d_fg, 3)
        fg = _clean((score > 0) & ~ring)
    return fg


def _grabcut(small: np.ndarray, border: int, iterations: int = 5) -> np.ndarray:
    import cv2

    h, w = small.shape[:2]
    mask = np.full((h, w), cv2.GC_PR_FGD, np.uint8)
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = (cv2.GC_BGD,) * 4
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(small[..., ::-1])
    cv2.grabCut(bgr, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    return _clean(fg)
