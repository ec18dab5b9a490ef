"""Depth errors of a rendered depth map against ground truth, after the alignment a relative depth allows.

A generator's rendered depth and the ground truth agree only up to the generator's own scale and
offset (its camera radius, box size and a learned scene need not match the data's), so depth is
compared after aligning one to the other:

* ``depth_accuracy`` (``unflat.metrics.paired``): the geometry-aware ImageNet paper's metric, taken
  from EG3D: MSE of the two maps, each normalised to zero mean and unit variance over the foreground.
* ``aligned_depth_errors`` (here): the monocular-depth protocol (MiDaS, Ranftl et al. 2020): the
  prediction is mapped by the least-squares scale and shift onto the ground truth over the
  foreground, then abs-rel = mean |aligned - gt| / gt and RMSE = sqrt(mean (aligned - gt)^2), in
  the ground truth's units (unflat's world units for synth data).

Both are invariant to a positive scale and any shift of the prediction, and 0 for a perfect one.
depth: [B,1,H,W]; mask: [B,1,H,W] foreground in [0,1] (pixels > 0.5 count).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _flatten(pred: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 1:
        raise ValueError(f"expected two [B,1,H,W] depth maps of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    b = pred.shape[0]
    m = torch.ones_like(target) if mask is None else (mask > 0.5).to(target.dtype)
    m = m.reshape(b, -1).double()
    if bool((m.sum(1) < 2).any()):
        raise ValueError("depth errors need at least 2 foreground pixels per image")
    return pred.reshape(b, -1).double(), target.reshape(b, -1).double(), m


def scale_shift(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Least-squares (s, t) per image minimising sum_mask (s * pred + t - target)^2 -> two [B] tensors.

    A constant prediction has no defined scale: s = 0 and t = the target's masked mean."""
    p, g, m = _flatten(pred, target, mask)
    n = m.sum(1)
    mean_p, mean_g = (p * m).sum(1) / n, (g * m).sum(1) / n
    dp, dg = (p - mean_p[:, None]) * m, (g - mean_g[:, None]) * m
    var = dp.square().sum(1)
    s = torch.where(var > 1e-18, (dp * dg).sum(1) / var.clamp_min(1e-18), torch.zeros_like(var))
    return s, mean_g - s * mean_p


def aligned_depth_errors(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
    """{"abs_rel": [B], "rmse": [B]} of ``pred`` after least-squares scale-and-shift alignment to
    ``target`` over the mask. ``target`` must be positive on the mask (camera depth)."""
    s, t = scale_shift(pred, target, mask)
    p, g, m = _flatten(pred, target, mask)
    if bool(((g <= 0) & (m > 0)).any()):
        raise ValueError("ground-truth depth must be positive on the foreground mask")
    aligned = s[:, None] * p + t[:, None]
    n = m.sum(1)
    abs_rel = ((aligned - g).abs() / g.where(m > 0, torch.ones_like(g)) * m).sum(1) / n
    rmse = (((aligned - g).square() * m).sum(1) / n).sqrt()
    return {"abs_rel": abs_rel, "rmse": rmse}
