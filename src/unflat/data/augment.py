"""Augmentations of training batches.

Input augmentation that makes clean training renders look like what users bring: other backgrounds, other light.

Both act on a batch of images [B,3,H,W] in [-1,1] with their object masks [B,1,H,W] in [0,1] and draw every
random choice from the NumPy generator passed in (a trainer seeds it with the run's seed and the step, so a
resumed run sees the same augmentations):

* ``composite_backgrounds``: with probability ``p`` per image, what is behind the object (``1 - mask``) becomes
  a packaged photo crop or a procedural texture (``unflat.data.backgrounds``), as a segmentation that left
  some background, or a photo composited on another scene, would show.
* ``vary_lighting``: the object's pixels get a per-image brightness gain, a colour tint (warm to cool) and a
  linear shading ramp across the image in a random direction (light from one side), of size ``strength``.
* ``crop_to_object``: each image re-framed as `unflat reconstruct --crop object` frames a photo (its object's
  box centred, spanning a fixed extent), so a reconstructor learns from the inputs it will be given.

And for the GANs' discriminators (seeded by torch's generator):

* ``random_xflip``: real images mirrored left-right (labels and cameras stay true).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from unflat.data.backgrounds import BackgroundKind, find_photos, random_background


def composite_backgrounds(images: Tensor, masks: Tensor, rng: np.random.Generator, probability: float,
                          kind: BackgroundKind = "mixed") -> Tensor:
    """[B,3,H,W] in [-1,1] -> the same with the background of about ``probability`` of the images replaced."""
    b, _, h, w = images.shape
    chosen = np.flatnonzero(rng.random(b) < probability)
    if len(chosen) == 0:
        return images
    photos = find_photos() if kind != "procedural" else ()
    side = max(h, w)
    backgrounds = np.stack([random_background(rng, side, kind, photos)[0][:h, :w] for _ in chosen])
    scene = torch.from_numpy(backgrounds).to(images.device, images.dtype).permute(0, 3, 1, 2) / 127.5 - 1
    out = images.clone()
    m = masks[chosen].to(images.dtype)
    out[chosen] = images[chosen] * m + scene * (1 - m)
    return out


def vary_lighting(images: Tensor, masks: Tensor, rng: np.random.Generator, strength: float) -> Tensor:
    """[B,3,H,W] in [-1,1] -> the same with each object's pixels re-lit (gain, tint, ramp of size ``strength``)."""
    if strength <= 0:
        return images
    b, _, h, w = images.shape
    gain = np.exp(rng.normal(0, 0.25 * strength, (b, 1)))
    t = rng.uniform(-1, 1, (b, 1))  # warm (-1) to cool (+1)
    tint = np.exp(0.12 * strength * t * np.array([[-1.0, 0.0, 1.0]]))
    angle = rng.uniform(0, 2 * math.pi, b)
    slope = rng.uniform(0, 0.5 * strength, b)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    ramp = 1 + torch.from_numpy(slope)[:, None, None] * (
        torch.from_numpy(np.cos(angle))[:, None, None] * xs + torch.from_numpy(np.sin(angle))[:, None, None] * ys)
    factor = torch.from_numpy(gain * tint)[:, :, None, None] * ramp[:, None].clamp_min(0)  # [B,3,H,W]
    factor = factor.to(images.device, images.dtype)
    unit = (images + 1) / 2
    lit = (unit * factor).clamp(0, 1)
    m = masks.to(images.dtype)
    return (lit * m + unit * (1 - m)) * 2 - 1


def crop_to_object(images: Tensor, masks: Tensor, extent: float, background: Tensor) -> tuple[Tensor, Tensor]:
    """[B,3,H,W] in [-1,1], masks [B,1,H,W] in [0,1] -> (images, masks) resampled (bilinear) so that each mask's
    bounding box is centred in a square window whose side is the box's longer side / ``extent``, as
    ``unflat.data.object_image.prepare_image`` frames an image; where the window leaves the image, the
    ``background`` [3] in [-1,1] (and mask 0). An image with an empty mask is returned as it is."""
    b, _, h, w = images.shape
    fg = masks[:, 0] > 0.5
    rows, cols = fg.any(2), fg.any(1)  # [B,H], [B,W]
    has = rows.any(1)
    ys = torch.arange(h, device=images.device, dtype=images.dtype)
    xs = torch.arange(w, device=images.device, dtype=images.dtype)
    big = float(max(h, w))
    y_lo = torch.where(rows, ys, big).amin(1)
    y_hi = torch.where(rows, ys, -1.0).amax(1) + 1
    x_lo = torch.where(cols, xs, big).amin(1)
    x_hi = torch.where(cols, xs, -1.0).amax(1) + 1
    side = torch.maximum(y_hi - y_lo, x_hi - x_lo).clamp_min(1) / max(extent, 1e-3)  # window side in pixels
    # affine_grid maps output [-1,1] to input [-1,1] (align_corners=False: pixel edges at +-1)
    scale_x, scale_y = side / w, side / h
    shift_x = (x_lo + x_hi) / w - 1
    shift_y = (y_lo + y_hi) / h - 1
    zero = torch.zeros_like(side)
    theta = torch.stack([torch.stack([scale_x, zero, shift_x], 1), torch.stack([zero, scale_y, shift_y], 1)], 1)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], device=images.device, dtype=images.dtype)
    theta = torch.where(has[:, None, None], theta, identity)
    grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)
    bg = background.to(images.device, images.dtype).view(1, 3, 1, 1)
    # resample the offset from the background, so that pixels from outside the image (zeros) are background
    cropped = F.grid_sample(images - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + bg
    cropped_masks = F.grid_sample(masks.to(images.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return cropped, cropped_masks


def random_xflip(images: Tensor, probability: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each row of ``images`` [B,C,H,W] left-right with ``probability`` (all channels of a row together,
    so RGB, depth and any stacked copies stay aligned).

    A mirrored image is the mirrored object seen from the mirrored camera (x -> -x in world and camera):
    for a discriminator that does not see the camera, and a camera distribution symmetric in azimuth, the
    mirrored batch is another sample of the same distribution, and its class labels stay true."""
    if probability <= 0:
        return images
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < probability
    return torch.where(flip.view(-1, *([1] * (images.ndim - 1))), images.flip(-1), images)
