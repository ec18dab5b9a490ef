"""Paired image metrics: a prediction against its own target, per image.

All functions take batches and return one value per image, [B]: images [B,C,H,W] in [0,1],
masks [B,1,H,W] in [0,1], depth [B,1,H,W]. Perceptual distances (LPIPS and its domain-backbone
stand-in) live in ``unflat.metrics.lpips``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"expected two [B,C,H,W] tensors of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per image -> [B]."""
    _check_pair(pred, target)
    return (pred.double() - target.double()).square().flatten(1).mean(1)


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image -> [B] (inf for identical images)."""
    return 10 * torch.log10(data_range**2 / mse(pred, target))


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> Tensor:
    """Normalised 1-D Gaussian taps of radius int(truncate*sigma + 0.5), as scipy's gaussian_filter
    (and therefore skimage's SSIM with gaussian_weights=True) uses: 11 taps for sigma 1.5."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Structural similarity (Wang et al. 2004) per image -> [B].

    Gaussian-weighted local statistics (sigma 1.5, 11x11), population (biased) variances, the map
    averaged over the valid region and over channels: the same definition as
    skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...).
    """
    _check_pair(pred, target)
    x, y = pred.double(), target.double()
    channels = x.shape[1]
    w = gaussian_window(sigma).to(x.device)
    if x.shape[-1] < w.numel() or x.shape[-2] < w.numel():
        raise ValueError(f"SSIM needs images of at least {w.numel()}x{w.numel()} pixels")
    kernel_h = w.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    kernel_w = w.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian, valid region only
        return F.conv2d(F.conv2d(t, kernel_h, groups=channels), kernel_w, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def silhouette_iou(pred_mask: Tensor, target_mask: Tensor, threshold: float = 0.5) -> Tensor:
    """IoU of binarised masks [B,1,H,W] -> [B]; 1 where both masks are empty."""
    _check_pair(pred_mask, target_mask)
    p, t = pred_mask > threshold, target_mask > threshold
    inter = (p & t).flatten(1).sum(1).double()
    union = (p | t).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def _standardise(depth: Tensor, mask: Tensor) -> Tensor:
    """Zero mean, unit standard deviation over the masked pixels of each map. depth, mask: [B,HW]."""
    count = mask.sum(1, keepdim=True).clamp_min(1)
    mean = (depth * mask).sum(1, keepdim=True) / count
    std = (((depth - mean) * mask).square().sum(1, keepdim=True) / count).sqrt()
    return (depth - mean) / std.clamp_min(1e-12)


def depth_accuracy(pred_depth: Tensor, reference_depth: Tensor, mask: Tensor | None = None) -> Tensor:
    """Depth accuracy (lower is better) as used by the ImageNet tri-plane paper, which takes it from
    EG3D [Chan et al. 2022]: the MSE between the rendered depth and a pseudo-ground-truth depth map
    (predicted by a monocular estimator, DPT in the paper; ground-truth depth when a dataset has
    it), after normalising each map to zero mean and unit variance over the foreground, because
    the estimator's depth is only defined up to scale and shift.

    pred_depth, reference_depth: [B,1,H,W]; mask: [B,1,H,W] foreground (default: everywhere).
    Returns [B].
    """
    _check_pair(pred_depth, reference_depth)
    b = pred_depth.shape[0]
    m = torch.ones_like(pred_depth) if mask is None else (mask > 0.5).to(pred_depth.dtype)
    m = m.reshape(b, -1).double()
    if bool((m.sum(1) < 2).any()):
        raise ValueError("depth accuracy needs at least 2 foreground pixels per image")
    p = _standardise(pred_depth.reshape(b, -1).double(), m)
    r = _standardise(reference_depth.reshape(b, -1).double(), m)
    return ((p - r).square() * m).sum(1) / m.sum(1)


def psnr_from_mse(value: float, data_range: float = 1.0) -> float:
    return math.inf if value == 0 else 10 * math.log10(data_range**2 / value)
