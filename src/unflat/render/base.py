"""The renderer interface shared by every renderer in unflat (OpenGL, volume, rasteriser)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import torch
from torch import Tensor

from unflat.cameras import Cameras


@dataclass
class RenderOutput:
    """What a renderer returns for B cameras.

    rgb: [B,3,H,W] float in [0,1] (composited over the background colour).
    mask: [B,1,H,W] float in [0,1] (coverage / opacity).
    depth: [B,1,H,W] float, camera-space z (OpenCV, positive forward); 0 where nothing was hit.
    normals: [B,3,H,W] world-space unit normals, or None when the renderer does not produce them.
    """

    rgb: Tensor
    mask: Tensor
    depth: Tensor
    normals: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> "RenderOutput":
        return RenderOutput(
            self.rgb.to(device),
            self.mask.to(device),
            self.depth.to(device),
            None if self.normals is None else self.normals.to(device),
            {k: v.to(device) for k, v in self.extras.items()},
        )


class MeshRenderer(Protocol):
    """Renders triangle meshes (trimesh.Trimesh, with vertex colours or a texture) from cameras."""

    resolution: int

    def render(self, meshes: "Sequence[object] | object", cameras: Cameras) -> RenderOutput:
        """One mesh for all cameras, or one mesh per camera (len(meshes) == len(cameras))."""
        ...
