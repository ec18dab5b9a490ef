"""Tri-plane features (EG3D): three axis-aligned feature planes queried by projection + bilinear sampling,
decoded by a small MLP into colour features and density.

Plane order and axes: plane 0 spans (x, y), plane 1 (x, z), plane 2 (y, z), each indexed so that
``grid_sample``'s first coordinate is the first axis. World points inside ``[-box/2, box/2]^3`` map to
plane coordinates in ``[-1, 1]``; outside the box the features are zero.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.nets.stylegan2 import EqualLinear

PLANE_AXES = ((0, 1), (0, 2), (1, 2))
Aggregation = Literal["sum", "mean"]


def project_to_planes(points: Tensor, box_size: float) -> Tensor:
    """World points [B,M,3] -> plane coordinates [B,3,M,2] in [-1,1] inside the box."""
    coords = points * (2.0 / box_size)
    return torch.stack([coords[..., list(axes)] for axes in PLANE_AXES], dim=1)


def sample_triplane(planes: Tensor, points: Tensor, box_size: float, aggregation: Aggregation = "sum") -> Tensor:
    """Bilinearly sample each plane at the points' projections and aggregate.

    planes: [B,3,C,R,R]; points: [B,M,3] -> features [B,M,C]. One ``grid_sample`` call for all planes.
    """
    b, n_planes, c, h, w = planes.shape
    grid = project_to_planes(points, box_size).reshape(b * n_planes, 1, -1, 2)
    # fp32 even under bf16 autocast: bf16 coordinates (8-bit mantissa) would snap to ~1/128 of the plane.
    sampled = F.grid_sample(planes.reshape(b * n_planes, c, h, w).float(), grid.float(), mode="bilinear",
                            padding_mode="zeros", align_corners=False)  # [B*3, C, 1, M]
    sampled = sampled.reshape(b, n_planes, c, -1)
    feats = sampled.sum(1) if aggregation == "sum" else sampled.mean(1)
    return feats.transpose(1, 2)


def density_blob(points: Tensor, strength: float, radius: float) -> Tensor:
    """Magic3D's density bias: points [B,M,3] -> strength * (1 - |x| / radius) [B,M,1], added to the raw density.
    Positive inside ``radius`` (an object at the centre from the first step), negative outside, where it clears
    the fog a fresh decoder fills the box with (opacity ~0.9 on every ray at initialisation), so what lies
    behind the object is left to the far background instead of being painted into the box."""
    return strength * (1.0 - points.float().norm(dim=-1, keepdim=True) / radius)


class TriplaneDecoder(nn.Module):
    """Aggregated plane features [B,M,C] -> (colour features [B,M,F] in about [0,1], density [B,M,1] >= 0).

    EG3D's decoder is FC(C,hidden) -> softplus -> FC(hidden, 1+F). ``extra_layers`` inserts that many
    hidden->hidden FC + softplus layers in between (the ImageNet tri-plane paper uses 2).
    Colour: sigmoid * 1.002 - 0.001 (EG3D), density: softplus(sigma - 1) (EG3D's shifted softplus,
    which starts nearly empty).
    """

    def __init__(self, in_features: int, hidden: int = 64, out_features: int = 32, extra_layers: int = 0,
                 lr_multiplier: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [EqualLinear(in_features, hidden, lr_multiplier=lr_multiplier), nn.Softplus()]
        for _ in range(extra_layers):
            layers += [EqualLinear(hidden, hidden, lr_multiplier=lr_multiplier), nn.Softplus()]
        layers.append(EqualLinear(hidden, 1 + out_features, lr_multiplier=lr_multiplier))
        self.net = nn.Sequential(*layers)
        self.out_features = out_features

    def forward(self, features: Tensor, density_bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``density_bias`` [B,M,1]: added to the raw density before the softplus (a foreground prior)."""
        x = self.net(features).float()
        colour = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001
        raw = x[..., :1] if density_bias is None else x[..., :1] + density_bias
        density = F.softplus(raw - 1.0)
        return colour, density
