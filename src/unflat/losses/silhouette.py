"""Silhouette losses for mesh reconstruction."""

from __future__ import annotations

from torch import Tensor


def iou_loss(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """1 - soft IoU, averaged over the batch (the silhouette loss of DIB-R / SoftRas).

    pred, target: [B,1,H,W] in [0,1]. IoU = sum(p t) / sum(p + t - p t) per image.
    """
    dims = tuple(range(1, pred.ndim))
    intersection = (pred * target).sum(dims)
    union = (pred + target - pred * target).sum(dims)
    return (1 - intersection / union.clamp_min(eps)).mean()
