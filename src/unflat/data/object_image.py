"""One photo of an object -> a network input framed like the training images (``unflat reconstruct``).

``read_image_rgb`` / ``read_mask`` decode a photo and its optional mask robustly (``unflat.data.image_files``)
into a padded working square; ``prepare_image`` finds the object (the mask, or where the photo differs from its
border's colour), centres it in a square crop so that it spans the training data's ``object_extent``, replaces
the background and resizes to the network's resolution.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from unflat.data.image_files import SkipReason, load_image, load_mask, padded_content_box
from unflat.errors import UserError

Crop = Literal["object", "none"]
"""How `reconstruct` frames an input: crop and centre its object (photos), or keep a training-like render as given."""

WORKING_SIDE = 512
"""Images (and masks) are decoded into a square of this side, padded, before cropping around the object."""


def read_image_rgb(path: Path) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Decode an image robustly (unflat.data.image_files: EXIF, alpha over white, 16-bit, CMYK, ...)
    into a padded WORKING_SIDE square -> (uint8 [S,S,3], box (top, left, bottom, right) of the real
    image inside the padding). Raises UserError naming the file when it cannot be read."""
    loaded = load_image(path, WORKING_SIDE, crop="pad")
    if isinstance(loaded, SkipReason):
        raise UserError(f"cannot read image {path}: {loaded}")
    return loaded.rgb, padded_content_box(loaded.original_size, WORKING_SIDE)


def read_mask(path: Path) -> np.ndarray:
    """float [S,S] in [0,1] of a mask file, padded exactly like ``read_image_rgb`` pads its image."""
    mask = load_mask(path, WORKING_SIDE, crop="pad")
    if isinstance(mask, SkipReason):
        raise UserError(f"cannot read mask {path}: {mask}")
    return mask.astype(np.float32) / 255


def prepare_image(rgb: np.ndarray, mask: np.ndarray | None, resolution: int, object_extent: float = 0.6,
                  background: np.ndarray | None = None, content: tuple[int, int, int, int] | None = None,
                  return_mask: bool = False, crop: Crop = "object") -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Crop and centre an object like the training images: float [R,R,3] in [0,1] (with ``return_mask``
    also the object's mask in the crop, float [R,R] in {0,1}).

    crop: "object" crops and centres as below; "none" keeps the square image's framing (only resized, and the
    background under ``mask`` replaced): for images already framed like the training renders, whose object
    size and position in the frame carry the object's scale, which a crop to a fixed extent would discard.

    rgb: uint8 [H,W,3]; mask: [H,W] in [0,1] or None; content: the (top, left, bottom, right) box of
    real pixels when rgb was padded (default: all of it).
    The object's bounding box (from ``mask``, or where the image differs from the colour of its
    border) is centred in a square crop sized so that the object spans ``object_extent`` of it (the
    training data's median), padded with the background colour; with a mask the background is
    replaced by ``background`` (the training data's; white by default).
    """
    # uint8 wherever no blending is needed, and per-channel maxima instead of .max(-1): on a 512^2 working image
    # this is what dominated `reconstruct`'s time per image on the GPU machine (~25 of 39 ms at batch 1).
    top, left, bottom, right = content or (0, 0, rgb.shape[0], rgb.shape[1])
    real = rgb[top:bottom, left:right]
    if mask is None:
        border = np.concatenate([real[0], real[-1], real[:, 0], real[:, -1]])
        background = np.median(border.astype(np.float32) / 255, axis=0).astype(np.float32)
        diff = np.abs(real.astype(np.float32) / 255 - background)
        fg_real = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2]) > 0.08
        fg = np.zeros(rgb.shape[:2], bool)
        if fg_real.mean() < 0.002:  # nothing stands out: use the whole image
            fg[top:bottom, left:right] = True
        else:
            fg[top:bottom, left:right] = fg_real
    else:
        background = np.ones(3, np.float32) if background is None else np.asarray(background, np.float32)
        fg = mask > 0.5
        if not fg.any():
            raise UserError("mask is empty (no pixel above 0.5)")
    if crop == "none":
        if rgb.shape[0] != rgb.shape[1]:
            raise ValueError(f"crop='none' needs a square image, got {rgb.shape[1]}x{rgb.shape[0]}")
        side, y0, x0 = rgb.shape[0], 0, 0
    else:
        rows, cols = np.nonzero(fg.any(1))[0], np.nonzero(fg.any(0))[0]
        y_lo, y_hi, x_lo, x_hi = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        side = max(int(math.ceil(max(y_hi - y_lo, x_hi - x_lo) / max(object_extent, 1e-3))), 1)
        y0 = int(round((y_lo + y_hi) / 2 - side / 2))
        x0 = int(round((x_lo + x_hi) / 2 - side / 2))
    background_u8 = (background * 255).round().astype(np.uint8)
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = background_u8
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + side, rgb.shape[0]), min(x0 + side, rgb.shape[1])
    if mask is None:  # the padding around the real image (outside ``content``) counts as background
        window = np.empty((sy1 - sy0, sx1 - sx0, 3), np.uint8)
        window[:] = background_u8
        ty0, tx0, ty1, tx1 = max(sy0, top), max(sx0, left), min(sy1, bottom), min(sx1, right)
        if ty1 > ty0 and tx1 > tx0:
            window[ty0 - sy0:ty1 - sy0, tx0 - sx0:tx1 - sx0] = rgb[ty0:ty1, tx0:tx1]
    else:  # the background under the mask becomes the training data's: blend the crop window only
        alpha = mask[sy0:sy1, sx0:sx1, None].astype(np.float32)
        blended = rgb[sy0:sy1, sx0:sx1].astype(np.float32) / 255 * alpha + background * (1 - alpha)
        window = (blended * 255).round().astype(np.uint8)
    canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = window
    resized = Image.fromarray(canvas).resize((resolution, resolution), Image.LANCZOS)
    image = np.asarray(resized, dtype=np.float32) / 255
    if not return_mask:
        return image
    fg_canvas = np.zeros((side, side), np.uint8)
    fg_canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = fg[sy0:sy1, sx0:sx1] * 255
    fg_small = np.asarray(Image.fromarray(fg_canvas).resize((resolution, resolution), Image.BILINEAR), np.float32) / 255
    return image, (fg_small > 0.5).astype(np.float32)
