"""Volume renderer against closed-form transmittance of homogeneous slabs and a NumPy inverse-CDF."""

from __future__ import annotations

import math

import numpy as np
import torch

from unflat.render.volume import composite, render_rays, sample_pdf, stratified_depths


def slab_field(sigma: float, z_lo: float, z_hi: float, colour=(0.2, 0.5, 0.9)):
    """Density sigma and a constant colour where z_lo <= z <= z_hi, empty elsewhere."""
    rgb = torch.tensor(colour)

    def field(points: torch.Tensor):
        inside = ((points[..., 2] >= z_lo) & (points[..., 2] <= z_hi)).float()[..., None]
        return rgb.expand(*points.shape[:-1], 3) * inside, sigma * inside

    return field


def rays_along_z(n: int, angle_deg: float = 0.0):
    """n rays from z=-2 tilted by angle in the x-z plane, batch of 1: origins/dirs [1,n,3]."""
    a = math.radians(angle_deg)
    dirs = torch.tensor([math.sin(a), 0.0, math.cos(a)]).expand(1, n, 3).contiguous()
    origins = torch.stack([torch.linspace(-0.5, 0.5, n), torch.zeros(n), torch.full((n,), -2.0)], -1)[None]
    return origins, dirs


def test_constant_density_is_exact_on_piecewise_constant_quadrature():
    sigma, near, far = 0.7, 0.5, 3.0
    depths = stratified_depths((1, 3), 8, near, far, perturb=False, device=torch.device("cpu"))
    feats = torch.ones(1, 3, 8, 2)
    out = composite(feats, torch.full((1, 3, 8, 1), sigma), depths)
    expected = 1 - math.exp(-sigma * (far - near))
    torch.testing.assert_close(out.opacity, torch.full((1, 3, 1), expected), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.features, torch.full((1, 3, 2), expected), atol=1e-6, rtol=0)


def test_slab_transmittance_colour_and_depth_match_closed_form():
    sigma, z_lo, z_hi = 1.3, -0.4, 0.6
    for angle in (0.0, 30.0):
        origins, dirs = rays_along_z(5, angle)
        out = render_rays(slab_field(sigma, z_lo, z_hi), origins, dirs, near=0.5, far=4.5, num_coarse=4000,
                          num_fine=0, perturb=False)
        length = (z_hi - z_lo) / math.cos(math.radians(angle))
        opacity = 1 - math.exp(-sigma * length)
        torch.testing.assert_close(out.opacity[0, :, 0], torch.full((5,), opacity), atol=3e-3, rtol=0)
        torch.testing.assert_close(out.features[0], torch.tensor([0.2, 0.5, 0.9]).expand(5, 3) * opacity, atol=3e-3, rtol=0)
        # E[t | absorbed in the slab] for an exponential truncated to the slab.
        t_in = (z_lo + 2.0) / math.cos(math.radians(angle))
        mean_t = t_in + 1 / sigma - length * math.exp(-sigma * length) / (1 - math.exp(-sigma * length))
        torch.testing.assert_close(out.depth[0, :, 0], torch.full((5,), mean_t), atol=5e-3, rtol=0)


def test_importance_samples_concentrate_where_the_density_is():
    amplitude, width = 2.0, 0.15  # Gaussian density bump around z = 0, i.e. t = 2 on these rays

    def bump(points):
        return torch.ones_like(points), amplitude * torch.exp(-points[..., 2:3] ** 2 / (2 * width**2))

    origins, dirs = rays_along_z(64)
    exact = 1 - math.exp(-amplitude * width * math.sqrt(2 * math.pi))
    torch.manual_seed(0)
    out = render_rays(bump, origins, dirs, 0.5, 4.5, num_coarse=16, num_fine=16, perturb=True)
    near_bump = ((out.depths - 2.0).abs() < 2 * width).float().mean()
    assert near_bump > 0.28  # stratified samples alone put 0.6/4 = 0.15 of them there
    assert (out.opacity - exact).abs().max() < 0.05


def test_sample_pdf_matches_numpy_inverse_cdf():
    bins = torch.tensor([[0.0, 1.0, 3.0, 4.0, 8.0]])
    weights = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
    samples = sample_pdf(bins, weights, 9, deterministic=True)
    pdf = (weights[0].numpy() + 1e-5) / (weights[0].numpy() + 1e-5).sum()
    cdf = np.concatenate([[0.0], np.cumsum(pdf)])
    u = np.linspace(0.5 / 9, 1 - 0.5 / 9, 9)
    np.testing.assert_allclose(samples[0].numpy(), np.interp(u, cdf, bins[0].numpy()), atol=1e-4)


def test_batched_rendering_equals_per_ray_rendering():
    torch.manual_seed(1)
    w = torch.randn(3, 4)

    def field(points):
        h = torch.sin(points @ w)
        return torch.sigmoid(h[..., :3]), torch.nn.functional.softplus(h[..., 3:]) * 2

    origins, dirs = rays_along_z(6, 10.0)
    full = render_rays(field, origins, dirs, 0.5, 4.0, 12, 12, perturb=False)
    for i in range(6):
        one = render_rays(field, origins[:, i:i + 1], dirs[:, i:i + 1], 0.5, 4.0, 12, 12, perturb=False)
        torch.testing.assert_close(one.features, full.features[:, i:i + 1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(one.depth, full.depth[:, i:i + 1], atol=1e-5, rtol=1e-5)


def test_merged_coarse_and_fine_samples_equal_compositing_at_the_sorted_depths():
    torch.manual_seed(2)
    w = torch.randn(3, 6)

    def field(points):
        h = torch.sin(points @ w)
        return torch.sigmoid(h[..., :5]), torch.nn.functional.softplus(h[..., 5:]) * 3

    origins, dirs = rays_along_z(7, 20.0)
    out = render_rays(field, origins, dirs, 0.5, 4.0, 10, 14, perturb=True)
    points = origins.unsqueeze(2) + out.depths.unsqueeze(-1) * dirs.unsqueeze(2)
    feats, density = field(points.reshape(1, -1, 3))
    ref = composite(feats.reshape(1, 7, 24, 5), density.reshape(1, 7, 24, 1), out.depths)
    torch.testing.assert_close(out.features, ref.features, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.opacity, ref.opacity, atol=1e-6, rtol=1e-6)
