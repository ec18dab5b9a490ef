"""Deferred Lambert shading: relight an albedo image from its normals with any lights, per view.

The OpenGL renderers bake one ``Lighting`` into their shader programs; in-the-wild data wants a different
light in every view. So the scene is rendered once unlit (albedo) with world-space normals, and shaded here:

    linear = albedo * ambient + sum_i albedo * (1 - 0.04) / pi * max(0, n . l_i) * radiance_i
    rgb = linear ** (1 / 2.2)

which is the diffuse part of the renderers' own shader (``moderngl_backend._FRAGMENT_SHADER``: vertex colours
are taken as linear, a rough dielectric's diffuse lobe, gamma 2.2 on output), so a relit render with
``Lighting.headlight()`` matches a lit render up to the specular term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_DIFFUSE = (1.0 - 0.04) / math.pi  # the shader's c_diff / pi for a dielectric at minimum roughness


@dataclass
class ViewLights:
    """Lights of B views: directions [B,K,3] (world, unit, from the surface towards the light), radiance
    [B,K,3] (colour x intensity) and ambient [B,3]."""

    directions: Tensor
    radiance: Tensor
    ambient: Tensor


def shade(albedo: Tensor, normals: Tensor, lights: ViewLights) -> Tensor:
    """albedo [B,3,H,W] in [0,1] (linear, as the shader reads vertex colours), normals [B,3,H,W] world
    (any length; zero where empty) -> shaded sRGB-ish [B,3,H,W] in [0,1]."""
    n = torch.nn.functional.normalize(normals, dim=1)
    cos = torch.einsum("bkc,bchw->bkhw", lights.directions.to(n), n).clamp_min(0)  # [B,K,H,W]
    irradiance = torch.einsum("bkhw,bkc->bchw", cos, lights.radiance.to(n)) * _DIFFUSE
    linear = albedo * (irradiance + lights.ambient.to(n)[:, :, None, None])
    return linear.clamp(0, 1) ** (1 / 2.2)
