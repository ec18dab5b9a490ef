"""Keep an input photo's colours on a predicted textured mesh: project the image into UV space where
the surface is visible from the input camera, and blend it with the predicted texture.

A reconstruction network trained with feature or pixel losses on novel views tends towards the
category's mean colour; the input image itself holds the exact colours of everything the input
camera sees. ``blend_projected_texture`` takes the predicted texture [B,3,T,T] and the partial
texture + visibility from :func:`unflat.render.rasterizer.project_to_uv` and returns

    texture * (1 - w) + partial * w,   w = strength * feather(visibility)

where ``feather`` shrinks the visible region by a soft border of ``feather`` texels (colours at
grazing angles and silhouette edges are the least reliable). With ``mirror`` (objects symmetric
about X = 0 on unflat's sphere template, whose UV rows flip under that mirror), texels hidden
from the camera but whose mirror image is visible take the mirrored colours, at ``mirror_strength``.

``estimate_orbit_camera`` finds the input camera of an image reconstructed without one (a photo):
it renders the predicted mesh from a grid of orbit cameras at the training data's radius and FoV
and keeps the one whose silhouette best overlaps the input's mask (IoU), colour agreement
breaking near-ties (the mesh is in the canonical frame, so only the camera is unknown).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from unflat.cameras import Cameras


def feather_visibility(visibility: Tensor, feather: int = 1) -> Tensor:
    """visibility [B,1,T,T] in {0,1} -> weights in [0,1]: 1 inside, falling to 0 over ``feather`` texels at
    the border of the visible region (a min-pool erosion smoothed by a box blur); 0 = unchanged."""
    if feather <= 0:
        return visibility
    k = 2 * feather + 1
    eroded = -F.max_pool2d(-visibility, k, stride=1, padding=feather)
    soft = F.avg_pool2d(F.pad(eroded, (feather,) * 4, mode="replicate"), k, stride=1)
    return torch.minimum(soft.clamp(0, 1) * 0.5 + eroded * 0.5, visibility)


def blend_projected_texture(texture: Tensor, partial: Tensor, visibility: Tensor, strength: float = 1.0,
                            feather: int = 1, mirror: bool = False, mirror_strength: float = 0.5) -> Tensor:
    """texture [B,C,T,T], partial [B,C,T,T] (zero where invisible), visibility [B,1,T,T] -> blended texture
    (same range as the inputs); see the module doc."""
    weight = strength * feather_visibility(visibility, feather)
    out = texture * (1 - weight) + partial * weight
    if mirror:
        m_vis = visibility.flip(-2)
        m_weight = mirror_strength * feather_visibility(m_vis, feather) * (1 - visibility)
        out = out * (1 - m_weight) + partial.flip(-2) * m_weight
    return out


@torch.no_grad()
def estimate_orbit_camera(
    render: Callable[[Cameras], tuple[Tensor, Tensor]],
    target_rgb: Tensor,
    target_mask: Tensor,
    radius: float,
    fov_deg: float,
    azimuths: Tensor | None = None,
    elevations: Tensor | None = None,
    colour_weight: float = 0.25,
) -> tuple[Cameras, Tensor]:
    """The orbit camera (looking at the origin) from which one predicted mesh best matches an image.

    render(cameras [N]) -> (rgb [N,3,H,W] in [0,1], coverage [N,1,H,W]) of the mesh; target_rgb [3,H,W] in [0,1];
    target_mask [1,H,W]. Score = silhouette IoU - colour_weight * mean |rgb - target| over the overlap.
    Returns (the best camera, Cameras of length 1; scores [N] of every candidate, azimuth-major).
    """
    azimuths = torch.arange(-180.0, 180.0, 10.0) if azimuths is None else azimuths
    elevations = torch.tensor([0.0, 15.0, 30.0, 45.0]) if elevations is None else elevations
    az, el = torch.meshgrid(azimuths, elevations, indexing="ij")
    az, el = az.reshape(-1), el.reshape(-1)
    cams = Cameras.from_orbit(az, el, torch.full_like(az, radius), fov_deg)
    scores = []
    for start in range(0, len(az), 16):
        chunk = cams[start:start + 16].to(target_rgb.device)
        rgb, coverage = render(chunk)
        mask = target_mask[None].to(coverage.dtype)
        inter = (coverage * mask).flatten(1).sum(1)
        union = (coverage + mask - coverage * mask).flatten(1).sum(1).clamp_min(1e-6)
        both = coverage * mask
        colour = ((rgb - target_rgb[None]).abs().mean(1, keepdim=True) * both).flatten(1).sum(1) / both.flatten(1).sum(1).clamp_min(1e-6)
        scores.append(inter / union - colour_weight * colour)
    scores = torch.cat(scores)
    best = int(scores.argmax())
    return cams[best:best + 1], scores
