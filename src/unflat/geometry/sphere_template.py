"""A UV sphere template whose UV map is mirror-symmetric about the world X = 0 plane.

The sphere's poles sit on the world X axis: the map's rows (``v``, downwards) run from the +X pole
(v = 0) to the -X pole (v = 1) and its columns (``u``) run once around the X axis. Mirroring a
point across X = 0 (x -> -x) therefore maps (u, v) to (u, 1 - v): flipping a UV map upside down
mirrors it left-right on the object, which is how the reconstruction network predicts half-height
maps and mirrors them (objects facing +Z or -Z are left-right symmetric about X = 0).

Geometry and texture use two index sets, as in OBJ/nvdiffrast: ``vertices``/``faces`` are the
closed sphere (one vertex per pole, no seam, so deformations cannot open cracks), while
``uv``/``faces_uv`` split the vertices along the seam (u = 0 / u = 1) and at the poles (one UV per
pole triangle) so the texture is continuous; face k of both index sets is the same triangle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class SphereTemplate:
    """vertices [V,3] unit sphere; faces [F,3] (outward, counter-clockwise); uv [Vt,2] in [0,1]
    (u across columns, v down rows); faces_uv [F,3]; uv_vertex [Vt] geometry vertex of each UV vertex;
    vertex_uv [V,2] where each geometry vertex samples UV maps (poles: see ``sample_vertex_map``)."""

    rings: int
    segments: int
    vertices: Tensor
    faces: Tensor
    uv: Tensor
    faces_uv: Tensor
    uv_vertex: Tensor
    vertex_uv: Tensor

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    def to(self, device: torch.device | str) -> "SphereTemplate":
        return SphereTemplate(
            self.rings, self.segments, *(t.to(device) for t in (
                self.vertices, self.faces, self.uv, self.faces_uv, self.uv_vertex, self.vertex_uv))
        )

    def sample_vertex_map(self, uv_map: Tensor) -> Tensor:
        """Bilinearly sample a UV map [B,C,H,W] at every geometry vertex -> [B,V,C].

        The map wraps around in ``u`` (the seam is not a boundary of the sphere); each pole takes
        the mean of the map's first (last) row, the values all around it.
        """
        batch, channels, height, width = uv_map.shape
        # Wrap in u: one column from the other side on each edge, and rescale u into the padded map.
        padded = torch.cat([uv_map[..., -1:], uv_map, uv_map[..., :1]], dim=-1)
        ring = self.vertex_uv[1:-1]
        u = (ring[:, 0] * width + 1) / (width + 2)
        grid = torch.stack([u * 2 - 1, ring[:, 1] * 2 - 1], -1).to(uv_map.dtype)
        grid = grid[None, None].expand(batch, 1, -1, 2)
        ring_values = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)
        ring_values = ring_values[:, :, 0].transpose(1, 2)  # [B,V-2,C]
        top = uv_map[:, :, 0, :].mean(-1)[:, None]
        bottom = uv_map[:, :, -1, :].mean(-1)[:, None]
        return torch.cat([top, ring_values, bottom], 1)


def sphere_template(rings: int = 16, segments: int = 32) -> SphereTemplate:
    """A UV sphere with ``rings`` latitude bands and ``segments`` longitude slices.

    V = 2 + (rings - 1) * segments vertices, F = 2 * segments * (rings - 1) faces
    (e.g. rings=8, segments=14: 196 faces; rings=32, segments=32: 1,984 faces).
    """
    if rings < 2 or segments < 3:
        raise ValueError(f"need rings >= 2 and segments >= 3, got {rings}, {segments}")
    # Geometry: pole +X, rings 1..rings-1 (each `segments` vertices), pole -X.
    theta = torch.arange(1, rings, dtype=torch.float64) * math.pi / rings  # from the +X axis
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments  # around X
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    ring_xyz = torch.stack([torch.cos(th), torch.sin(th) * torch.cos(ph), torch.sin(th) * torch.sin(ph)], -1)
    vertices = torch.cat([torch.tensor([[1.0, 0, 0]], dtype=torch.float64), ring_xyz.reshape(-1, 3),
                          torch.tensor([[-1.0, 0, 0]], dtype=torch.float64)])
    last = vertices.shape[0] - 1

    def ring_vertex(i: int, j: int) -> int:  # i in 1..rings-1
        return 1 + (i - 1) * segments + (j % segments)

    # UVs: rows 0..rings of (segments + 1) columns; pole rows get one UV per pole triangle.
    def uv_index(i: int, j: int) -> int:
        return i * (segments + 1) + j

    uv = torch.zeros((rings + 1) * (segments + 1), 2, dtype=torch.float64)
    uv_vertex = torch.zeros((rings + 1) * (segments + 1), dtype=torch.long)
    for i in range(rings + 1):
        for j in range(segments + 1):
            k = uv_index(i, j)
            pole = i in (0, rings)
            uv[k] = torch.tensor([((j + 0.5) if pole else j) / segments, i / rings])
            uv_vertex[k] = 0 if i == 0 else last if i == rings else ring_vertex(i, j)

    faces, faces_uv = [], []
    for i in range(rings):
        for j in range(segments):
            a, b = uv_index(i, j), uv_index(i, j + 1)
            c, d = uv_index(i + 1, j), uv_index(i + 1, j + 1)
            if i > 0:
                faces_uv.append([a, c, b])
            if i < rings - 1:
                faces_uv.append([b, c, d])
    faces_uv = torch.tensor(faces_uv, dtype=torch.long)
    faces = uv_vertex[faces_uv]
    # Orient every face outward (the winding above depends on the parametrisation's handedness).
    corners = vertices[faces]
    normal = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    inward = (normal * corners.mean(1)).sum(-1) < 0
    faces[inward] = faces[inward][:, [0, 2, 1]]
    faces_uv[inward] = faces_uv[inward][:, [0, 2, 1]]

    vertex_uv = torch.zeros(vertices.shape[0], 2, dtype=torch.float64)
    vertex_uv[0] = torch.tensor([0.5, 0.0])
    vertex_uv[-1] = torch.tensor([0.5, 1.0])
    for i in range(1, rings):
        for j in range(segments):
            vertex_uv[ring_vertex(i, j)] = torch.tensor([j / segments, i / rings])
    return SphereTemplate(rings, segments, vertices.float(), faces, uv.float(), faces_uv, uv_vertex, vertex_uv.float())
