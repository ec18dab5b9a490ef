"""Find the object in a photo and crop a square around it, centred, with a margin (``dataset images --crop object``).

``decode_padded`` decodes a photo robustly (``unflat.data.image_files``) into a padded square working image plus
the box of its real pixels; ``find_object`` masks the main object with the weight-free segmentation of
``unflat.data.segment`` (GrabCut with OpenCV, else the colour model) or says why there is none; ``crop_object``
centres the mask's bounding box in a square whose side is the box's longer side times ``1 + 2 * margin``, and
resizes image and mask to the output resolution. Where that square leaves the photo it is filled with the
median colour of the photo's border (the background's), and the mask is 0 there.
"""

from __future__ import annotations

import math

import numpy as np

from unflat.data.image_files import SkipReason, load_image, load_mask, padded_content_box
from unflat.data.segment import Method, segment_object

NO_OBJECT = "no object found"
SMALL_OBJECT = "object too small"
EMPTY_MASK = "empty mask"

MIN_OBJECT_FRACTION = 0.005
"""A found object covering less than this fraction of the photo is skipped (noise, not an object)."""
MAX_OBJECT_FRACTION = 0.97
"""A "found" object covering more than this is the whole photo: nothing stood out from the border."""


def work_side(resolution: int) -> int:
    """Working square side: the object may fill a quarter of the photo and still reach the output resolution."""
    return int(min(2048, max(512, 4 * resolution)))


def decode_padded(path: str, side: int, min_side: int, max_pixels: int | None,
                  mask_file: str | None = None) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray | None, np.ndarray | None] | SkipReason:
    """(rgb uint8 [S,S,3] padded, content box (top, left, bottom, right), alpha uint8 [S,S] or None,
    the mask file's mask uint8 [S,S] or None), or why the photo (or its mask) cannot be used."""
    loaded = load_image(path, side, "pad", min_side=min_side, max_pixels=max_pixels)
    if isinstance(loaded, SkipReason):
        return loaded
    mask = None
    if mask_file is not None:
        mask = load_mask(mask_file, side, "pad")
        if isinstance(mask, SkipReason):
            return SkipReason("bad mask", f"{mask}")
    return loaded.rgb, padded_content_box(loaded.original_size, side), loaded.alpha, mask


def find_object(rgb: np.ndarray, content: tuple[int, int, int, int], method: Method = "auto") -> np.ndarray | SkipReason:
    """float32 [S,S] in {0,1}: the main object's mask, or why none was found."""
    mask = segment_object(rgb, content, method)
    top, left, bottom, right = content
    fraction = float(mask[top:bottom, left:right].mean())
    if fraction >= MAX_OBJECT_FRACTION:
        return SkipReason(NO_OBJECT, "nothing stands out from the photo's border (a scene, or the object fills it)")
    if fraction < MIN_OBJECT_FRACTION:
        return SkipReason(SMALL_OBJECT, f"{100 * fraction:.2f} % of the photo")
    return mask


def crop_object(rgb: np.ndarray, mask: np.ndarray, content: tuple[int, int, int, int], resolution: int,
                margin: float) -> tuple[np.ndarray, np.ndarray]:
    """rgb uint8 [S,S,3], mask [S,S] in [0,1] (or uint8) -> (uint8 [R,R,3], uint8 [R,R]) centred on the mask's box."""
    from PIL import Image  # noqa: PLC0415

    mask = mask.astype(np.float32) / (255.0 if mask.dtype == np.uint8 else 1.0)
    top, left, bottom, right = content
    fg = mask > 0.5
    rows, cols = np.nonzero(fg.any(1))[0], np.nonzero(fg.any(0))[0]
    y_lo, y_hi, x_lo, x_hi = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = max(1, int(math.ceil(max(y_hi - y_lo, x_hi - x_lo) * (1 + 2 * margin))))
    y0 = int(round((y_lo + y_hi - side) / 2))
    x0 = int(round((x_lo + x_hi - side) / 2))
    real = rgb[top:bottom, left:right]
    border = np.concatenate([real[0], real[-1], real[:, 0], real[:, -1]])
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = np.median(border, axis=0).round().astype(np.uint8)
    mask_canvas = np.zeros((side, side), np.float32)
    # only the photo's real pixels (inside ``content``) are copied: the decoding padding is not the scene
    sy0, sx0, sy1, sx1 = max(y0, top), max(x0, left), min(y0 + side, bottom), min(x0 + side, right)
    if sy1 > sy0 and sx1 > sx0:
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        mask_canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = mask[sy0:sy1, sx0:sx1]
    image = np.asarray(Image.fromarray(canvas).resize((resolution, resolution), Image.Resampling.LANCZOS))
    small = np.asarray(Image.fromarray(mask_canvas).resize((resolution, resolution), Image.Resampling.BILINEAR))
    return image, np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)
