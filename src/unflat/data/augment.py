"""Augmentations of real training batches that keep their labels and cameras true."""

from __future__ import annotations

import torch
from torch import Tensor


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
