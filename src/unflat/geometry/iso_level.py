"""The iso-level of a density grid whose surface is where the volume rendering says the object is.

A radiance-field generator is trained on its renders only, and a render does not show every density: on a white
background, white "fog" around the object is invisible, so a GAN may paint it wherever it likes. A fixed level
(EG3D's density 10) then finds the fog as a shell around the object. The rendering itself says where the object
is: the rays whose accumulated opacity reaches 0.5. ``silhouette_level`` picks the density level whose
silhouettes match that mask best:

1. for every ray of a few cameras, the largest grid density along the ray (trilinear samples of the grid, the
   same values marching cubes interpolates): the ray hits the level-L surface iff that maximum exceeds L;
2. for candidate levels (quantiles of those maxima, where the silhouettes change), the IoU between
   ``max > L`` and ``opacity >= 0.5``;
3. the level in the middle (geometric mean of the lowest and the highest) of the levels whose IoU is within ``tolerance`` of the best: a
   solid object with a sharp edge gives a plateau of equally good levels, and its middle is farthest from both
   the fog below it and the object's core above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class LevelChoice:
    """level: the chosen density; iou: its silhouette IoU against the rendered opacity mask (0 when there was
    nothing to match); levels / ious: the candidates tried [L] and their IoUs [L]."""

    level: float
    iou: float
    levels: Tensor
    ious: Tensor


def ray_max_density(grid: Tensor, half: float, origins: Tensor, dirs: Tensor, near: float, far: float,
                    num_samples: int | None = None) -> Tensor:
    """grid [R,R,R] on ``grid_points(R, (-half, half))``; rays origins/dirs [N,3] -> the largest trilinear
    grid value along each ray between ``near`` and ``far`` [N] (0 outside the grid). ``num_samples``
    defaults to two per voxel along the longest ray."""
    r = grid.shape[0]
    if num_samples is None:
        num_samples = max(8, int(2 * r * (far - near) / (2 * half)))
    t = torch.linspace(near, far, num_samples, device=grid.device)
    out = torch.empty(origins.shape[0], device=grid.device)
    volume = grid.float()[None, None]  # [1,1,X,Y,Z]: grid_sample's (D,H,W) are (x,y,z), its coordinates (z,y,x)
    chunk = max(1, (1 << 22) // num_samples)
    for s in range(0, origins.shape[0], chunk):
        o, d = origins[s:s + chunk].to(grid.device).float(), dirs[s:s + chunk].to(grid.device).float()
        points = o[:, None] + t[None, :, None] * d[:, None]  # [n,S,3]
        coords = (points / half).flip(-1)[None, :, :, None]  # [1,n,S,1,3]
        values = F.grid_sample(volume, coords, mode="bilinear", padding_mode="zeros", align_corners=True)
        out[s:s + chunk] = values[0, 0, :, :, 0].amax(-1)
    return out


def silhouette_level(max_density: Tensor, opacity: Tensor, num_levels: int = 256, tolerance: float = 0.01,
                     threshold: float = 0.5) -> LevelChoice | None:
    """max_density [N] (``ray_max_density``) and rendered opacity [N] of the same rays -> the level whose
    silhouette ``max_density > level`` best matches ``opacity >= threshold`` (see the module docstring);
    None when no ray is opaque or no level separates anything (an empty or untrained field)."""
    max_density, mask = max_density.reshape(-1).float(), opacity.reshape(-1) >= threshold
    if not mask.any() or not (max_density > 0).any():
        return None
    q = torch.linspace(0, 1, num_levels, device=max_density.device)
    levels = torch.unique(torch.quantile(max_density, q))
    levels = levels[(levels > 0) & (levels < max_density.max())]
    if levels.numel() == 0:
        return None
    hit = max_density[None, :] > levels[:, None]  # [L,N]
    inter = (hit & mask[None]).sum(-1).float()
    union = (hit | mask[None]).sum(-1).float()
    ious = inter / union.clamp_min(1)
    best = float(ious.max())
    good = levels[ious >= best - tolerance]
    level = float(torch.sqrt(good.min() * good.max()))
    # the geometric middle of a plateau can fall between candidates with lower IoU (two plateaus): take the
    # best candidate nearest to it then
    if float(_iou_at(max_density, mask, level)) < best - tolerance:
        level = float(good[(torch.log(good) - torch.log(torch.tensor(level))).abs().argmin()])
    return LevelChoice(level, float(_iou_at(max_density, mask, level)), levels, ious)


def _iou_at(max_density: Tensor, mask: Tensor, level: float) -> Tensor:
    hit = max_density > level
    return (hit & mask).sum().float() / (hit | mask).sum().clamp_min(1).float()
