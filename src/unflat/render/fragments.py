"""What rasterisation leaves in each pixel (``Fragments``), and the differentiable barycentrics and depth at
pixel centres that every rasteriser backend (the PyTorch one in ``rasterizer``, nvdiffrast) computes from the
face covering each pixel. Its own module so that backends depend on it and not on each other."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Fragments:
    """What rasterisation leaves in each pixel.

    face_id: [B,H,W] int64, the covering face, -1 where no face covers the pixel centre.
    bary: [B,H,W,3] perspective-correct barycentric weights of the face's three vertices
        (zero in the background); differentiable w.r.t. the clip-space vertices.
    depth: [B,H,W] camera-space depth (clip w) of the surface, 0 in the background; differentiable.
    """

    face_id: Tensor
    bary: Tensor
    depth: Tensor

    @property
    def mask(self) -> Tensor:
        """[B,1,H,W] float hard coverage (1 where a face covers the pixel centre)."""
        return (self.face_id >= 0).float()[:, None]


def _pixel_centres_ndc(cols: Tensor, rows: Tensor, resolution: tuple[int, int], dtype: torch.dtype) -> Tensor:
    height, width = resolution
    return torch.stack([(2 * cols.to(dtype) + 1) / width - 1, (2 * rows.to(dtype) + 1) / height - 1], -1)



def _edge_weights(a: Tensor, b: Tensor, c: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """Screen-space barycentric weights [N,3] of points p [N,2] in triangles (a, b, c) [N,2], and
    the signed doubled area [N]."""
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    w0 = (b[:, 0] - p[:, 0]) * (c[:, 1] - p[:, 1]) - (b[:, 1] - p[:, 1]) * (c[:, 0] - p[:, 0])
    w1 = (c[:, 0] - p[:, 0]) * (a[:, 1] - p[:, 1]) - (c[:, 1] - p[:, 1]) * (a[:, 0] - p[:, 0])
    w2 = (a[:, 0] - p[:, 0]) * (b[:, 1] - p[:, 1]) - (a[:, 1] - p[:, 1]) * (b[:, 0] - p[:, 0])
    return torch.stack([w0, w1, w2], -1), area


def fragments_from_face_ids(verts_clip: Tensor, faces: Tensor, face_id: Tensor, resolution: tuple[int, int]) -> Fragments:
    """Differentiable barycentrics and depth at pixel centres, given which face covers each pixel.

    Perspective-correct: screen-space weights ``l_i`` (from NDC edge functions) become
    ``(l_i / w_i) / sum_j (l_j / w_j)`` and the depth is ``1 / sum_j (l_j / w_j)``.
    """
    batch, height, width = face_id.shape
    covered = face_id >= 0
    b_idx, rows, cols = torch.nonzero(covered, as_tuple=True)
    fid = face_id[b_idx, rows, cols]
    corners = verts_clip[b_idx[:, None], faces[fid]]  # [N,3,4]
    ndc = corners[..., :2] / corners[..., 3:4]
    p = _pixel_centres_ndc(cols, rows, resolution, verts_clip.dtype)
    weights, area = _edge_weights(ndc[:, 0], ndc[:, 1], ndc[:, 2], p)
    screen = weights / area[:, None]
    persp = screen / corners[..., 3]
    inv_depth = persp.sum(-1, keepdim=True)
    bary_px = persp / inv_depth
    bary = verts_clip.new_zeros(batch, height, width, 3).index_put((b_idx, rows, cols), bary_px)
    depth = verts_clip.new_zeros(batch, height, width).index_put((b_idx, rows, cols), 1.0 / inv_depth[:, 0])
    return Fragments(face_id, bary, depth)
