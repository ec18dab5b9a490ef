"""Differentiable volume rendering of a radiance field (NeRF/EG3D quadrature), fully batched.

A field is any callable ``field(points [B,M,3]) -> (features [B,M,C], density [B,M,1] >= 0)``.
Rays are given as origins/unit directions [B,R,3]; every ray of every batch element is rendered in one
set of tensor operations (no Python loop over rays).

Quadrature (EG3D's): samples t_0 < ... < t_{N-1} split the ray into N-1 intervals; interval i has
length d_i = t_{i+1} - t_i, the mean density and features of its two end samples, opacity
alpha_i = 1 - exp(-sigma_i d_i) and transmittance T_i = exp(-sum_{j<i} sigma_j d_j) (cumulative sum,
not a product of (1-alpha), so it is exact for piecewise-constant density). Weights w_i = T_i alpha_i;
colour = sum w_i c_i; opacity = sum w_i = 1 - T_N; depth = sum w_i t_mid_i / opacity.

Coarse samples are stratified in [near, far] (jittered while training); fine samples are drawn by
inverse-CDF sampling of the coarse weights (smoothed as in EG3D) and merged with the coarse ones.
The random numbers of both can be drawn up front (``draw_ray_noise``) and passed in, so rendering the
rays in chunks (gradient checkpointing) uses exactly the numbers a single call would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import record_function

FieldFn = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass
class VolumeOutput:
    """features: [B,R,C] composited (no background added); depth: [B,R,1] expected distance along the
    ray (``far`` where the ray is empty); opacity: [B,R,1] in [0,1]; weights: [B,R,N-1] per interval;
    depths: [B,R,N] the sample distances used."""

    features: Tensor
    depth: Tensor
    opacity: Tensor
    weights: Tensor
    depths: Tensor


@dataclass
class RayNoise:
    """The random numbers of one ``render_rays`` call: jitter [B,R,num_coarse] in [0,1) for the
    stratified samples, u [B,R,num_fine] in [0,1) for inverse-CDF sampling (None = not perturbed)."""

    jitter: Tensor | None
    u: Tensor | None

    def rays(self, index: slice) -> "RayNoise":
        """The noise of a subset of rays (dimension 1)."""
        return RayNoise(*(None if t is None else t[:, index] for t in (self.jitter, self.u)))


def draw_ray_noise(shape: tuple[int, int], num_coarse: int, num_fine: int, perturb: bool, device: torch.device,
                   generator: torch.Generator | None = None) -> RayNoise:
    """Draw what ``render_rays`` would draw, in the same order (jitter first, then u)."""
    b, r = shape
    jitter = torch.rand((b, r, num_coarse), device=device, generator=generator) if perturb and num_coarse > 1 else None
    u = torch.rand((b, r, num_fine), device=device, generator=generator) if perturb and num_fine > 0 else None
    return RayNoise(jitter, u)


def stratified_depths(shape: tuple[int, int], num: int, near: float, far: float, perturb: bool,
                      device: torch.device, generator: torch.Generator | None = None,
                      jitter: Tensor | None = None) -> Tensor:
    """[B,R,num] sample distances spanning [near, far]: evenly spaced, each jittered within its own
    stratum when ``perturb`` (clamped so the ends stay at near/far). ``jitter`` [B,R,num] in [0,1)
    replaces the random draw."""
    b, r = shape
    t = torch.linspace(near, far, num, device=device).expand(b, r, num)
    if perturb and num > 1:
        if jitter is None:
            jitter = torch.rand((b, r, num), device=device, generator=generator)
        noise = jitter - 0.5
        t = (t + noise * ((far - near) / (num - 1))).clamp(near, far)
        t = torch.sort(t, dim=-1)[0]
    return t.contiguous()


def interval_weights(densities: Tensor, depths: Tensor) -> Tensor:
    """densities [B,R,N,1] (or [B,R,N]), sorted depths [B,R,N] -> interval weights [B,R,N-1] (fp32)."""
    sigma = densities.float().reshape(depths.shape)
    depths = depths.float()
    tau = 0.5 * (sigma[..., 1:] + sigma[..., :-1]) * (depths[..., 1:] - depths[..., :-1])
    alpha = 1.0 - torch.exp(-tau)
    transmittance = torch.exp(-(torch.cumsum(tau, dim=-1) - tau))  # exclusive cumulative sum
    return alpha * transmittance


def per_sample_weights(weights: Tensor) -> Tensor:
    """Interval weights [...,N-1] -> sample weights [...,N] with sum_i w_i (f_i + f_i+1)/2 = sum_j v_j f_j,
    so features are composited without building the [B,R,N-1,C] interval midpoints."""
    return 0.5 * (F.pad(weights, (0, 1)) + F.pad(weights, (1, 0)))


def _finish(features: Tensor, weights: Tensor, depths: Tensor, far: float | None) -> VolumeOutput:
    depths = depths.float()
    opacity = weights.sum(-1, keepdim=True)
    depth_mid = 0.5 * (depths[..., 1:] + depths[..., :-1])
    far_value = depths[..., -1:] if far is None else torch.full_like(depths[..., -1:], far)
    depth = torch.where(opacity > 1e-6, (weights * depth_mid).sum(-1, keepdim=True) / opacity.clamp_min(1e-6), far_value)
    depth = torch.minimum(torch.maximum(depth, depths[..., :1]), depths[..., -1:])
    return VolumeOutput(features, depth, opacity, weights, depths)


def composite(features: Tensor, densities: Tensor, depths: Tensor, far: float | None = None) -> VolumeOutput:
    """features [B,R,N,C], densities [B,R,N,1], depths [B,R,N] (sorted) -> VolumeOutput (fp32 maths)."""
    weights = interval_weights(densities, depths)
    rgb = torch.einsum("brn,brnc->brc", per_sample_weights(weights), features.float())
    return _finish(rgb, weights, depths, far)


def sample_pdf(bins: Tensor, weights: Tensor, num: int, deterministic: bool,
               generator: torch.Generator | None = None, u: Tensor | None = None) -> Tensor:
    """Inverse-CDF sampling of piecewise-constant densities.

    bins: [..., K+1] interval edges (sorted); weights: [..., K] >= 0 -> samples [..., num] (sorted).
    u: [..., num] in [0,1) replaces the random draw (not deterministic).
    """
    pdf = (weights + 1e-5) / (weights + 1e-5).sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, -1)], -1).clamp_max(1.0)
    shape = (*cdf.shape[:-1], num)
    if deterministic:
        u = torch.linspace(0.5 / num, 1 - 0.5 / num, num, device=bins.device).expand(shape)
    elif u is None:
        u = torch.rand(shape, device=bins.device, generator=generator)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.contiguous(), u, right=True)
    below = (idx - 1).clamp(0, cdf.shape[-1] - 1)
    above = idx.clamp(0, cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = torch.gather(cdf, -1, below), torch.gather(cdf, -1, above)
    bin_lo, bin_hi = torch.gather(bins, -1, below), torch.gather(bins, -1, above)
    denom = torch.where(cdf_hi - cdf_lo < 1e-5, torch.ones_like(cdf_hi), cdf_hi - cdf_lo)
    samples = bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)
    return torch.sort(samples, dim=-1)[0]


def smooth_weights(weights: Tensor, floor: float = 0.01) -> Tensor:
    """EG3D's importance prior: max-pool then average-pool neighbouring interval weights, plus a floor
    so every interval keeps some probability. [..., K] -> [..., K]."""
    shape = weights.shape
    w = weights.reshape(-1, 1, shape[-1])
    w = F.max_pool1d(w, 2, 1, padding=1)
    w = F.avg_pool1d(w, 2, 1)
    return (w + floor).reshape(shape)


def _query(field: FieldFn, origins: Tensor, dirs: Tensor, depths: Tensor) -> tuple[Tensor, Tensor]:
    """Field values at origins + t dirs for depths [B,R,N] -> features [B,R,N,C], density [B,R,N,1]."""
    b, r, n = depths.shape
    points = origins.unsqueeze(2) + depths.unsqueeze(-1) * dirs.unsqueeze(2)
    feats, density = field(points.reshape(b, r * n, 3))
    return feats.reshape(b, r, n, -1), density.reshape(b, r, n, 1)


def render_rays(field: FieldFn, origins: Tensor, dirs: Tensor, near: float, far: float,
                num_coarse: int, num_fine: int = 0, perturb: bool = True,
                generator: torch.Generator | None = None, noise: RayNoise | None = None) -> VolumeOutput:
    """Render rays origins/dirs [B,R,3] through ``field`` with stratified + importance samples.
    ``noise``: pre-drawn random numbers (``draw_ray_noise``) instead of drawing them here."""
    b, r, _ = origins.shape
    noise = noise or RayNoise(None, None)
    t_coarse = stratified_depths((b, r), num_coarse, near, far, perturb, origins.device, generator, noise.jitter)
    f_coarse, s_coarse = _query(field, origins, dirs, t_coarse)
    if num_fine <= 0:
        with record_function("unflat/volume/composite"):
            return composite(f_coarse, s_coarse, t_coarse, far)
    with torch.no_grad(), record_function("unflat/volume/importance"):
        coarse_weights = interval_weights(s_coarse.detach(), t_coarse)
        t_fine = sample_pdf(t_coarse, smooth_weights(coarse_weights), num_fine, deterministic=not perturb,
                            generator=generator, u=noise.u)
    f_fine, s_fine = _query(field, origins, dirs, t_fine)
    # Composite coarse + fine samples in depth order. Only depths and densities are sorted; the sample
    # weights are scattered back to the unsorted order, so the C-channel features are never gathered.
    with record_function("unflat/volume/composite"):
        t_all, order = torch.sort(torch.cat([t_coarse, t_fine], -1), dim=-1)
        s_all = torch.gather(torch.cat([s_coarse, s_fine.to(s_coarse.dtype)], 2)[..., 0], 2, order)
        weights = interval_weights(s_all, t_all)
        unsorted = torch.zeros_like(t_all).scatter(-1, order, per_sample_weights(weights))
        rgb = (torch.einsum("brn,brnc->brc", unsorted[..., :num_coarse], f_coarse.float())
               + torch.einsum("brn,brnc->brc", unsorted[..., num_coarse:], f_fine.float()))
        return _finish(rgb, weights, t_all, far)


def concat_rays(outputs: list[VolumeOutput]) -> VolumeOutput:
    """VolumeOutputs of consecutive chunks of rays -> one VolumeOutput (concatenated along rays)."""
    return VolumeOutput(*(torch.cat([getattr(o, k) for o in outputs], 1)
                          for k in ("features", "depth", "opacity", "weights", "depths")))


def render_rays_chunked(field: FieldFn, origins: Tensor, dirs: Tensor, near: float, far: float, num_coarse: int,
                        num_fine: int = 0, perturb: bool = False, chunk: int = 65536) -> VolumeOutput:
    """Inference helper: render in chunks of rays (per batch element) to bound memory; same result as
    ``render_rays`` with perturb=False."""
    return concat_rays([render_rays(field, origins[:, i:i + chunk], dirs[:, i:i + chunk], near, far, num_coarse,
                                    num_fine, perturb) for i in range(0, origins.shape[1], chunk)])
