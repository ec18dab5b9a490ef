"""A batch of triangle meshes in two tensors (all vertices, all faces) plus per-mesh counts.

This is how batched marching cubes returns its surfaces and what the batched OpenGL renderer draws:
one vertex buffer and one index buffer for the whole batch, no Python object per mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class PackedMeshes:
    """B meshes packed back to back.

    vertices: [V,3] float, mesh 0's vertices first, then mesh 1's, ...
    faces: [F,3] int64 indices into ``vertices`` (global, i.e. already offset), grouped by mesh in order.
    vertex_counts, face_counts: [B] int64 (a mesh may have none).
    """

    vertices: Tensor
    faces: Tensor
    vertex_counts: Tensor
    face_counts: Tensor

    def __len__(self) -> int:
        return len(self.vertex_counts)

    @property
    def device(self) -> torch.device:
        return self.vertices.device

    def vertex_offsets(self) -> Tensor:
        """[B] index of each mesh's first vertex."""
        return torch.cumsum(self.vertex_counts, 0) - self.vertex_counts

    def face_offsets(self) -> Tensor:
        """[B] index of each mesh's first face."""
        return torch.cumsum(self.face_counts, 0) - self.face_counts

    def to(self, device: torch.device | str) -> "PackedMeshes":
        return PackedMeshes(self.vertices.to(device), self.faces.to(device), self.vertex_counts.to(device),
                            self.face_counts.to(device))

    def mesh(self, index: int) -> tuple[Tensor, Tensor]:
        """(vertices [V_i,3], faces [F_i,3] with local indices) of mesh ``index``."""
        v0, f0 = int(self.vertex_offsets()[index]), int(self.face_offsets()[index])
        nv, nf = int(self.vertex_counts[index]), int(self.face_counts[index])
        return self.vertices[v0 : v0 + nv], self.faces[f0 : f0 + nf] - v0

    def vertex_normals(self) -> Tensor:
        """[V,3] area-weighted mean of the adjacent faces' normals, unit length (zero for isolated vertices)."""
        return vertex_normals(self.vertices, self.faces)

    def to_trimesh(self, color: tuple[float, float, float] | None = None) -> list:
        """One ``trimesh.Trimesh`` per mesh (unprocessed, so vertices and faces stay as they are);
        ``color``: RGB in [0,1] given to every vertex of non-empty meshes."""
        import trimesh  # noqa: PLC0415

        vertices = self.vertices.detach().cpu().numpy()
        faces = self.faces.detach().cpu().numpy()
        v_off, f_off = self.vertex_offsets().tolist(), self.face_offsets().tolist()
        rgba = None if color is None else np.array([*(np.asarray(color) * 255).round(), 255], np.uint8)
        out = []
        for v0, nv, f0, nf in zip(v_off, self.vertex_counts.tolist(), f_off, self.face_counts.tolist()):
            mesh = trimesh.Trimesh(vertices=vertices[v0 : v0 + nv], faces=faces[f0 : f0 + nf] - v0, process=False)
            if rgba is not None and nf:
                mesh.visual.vertex_colors = np.tile(rgba, (nv, 1))
            out.append(mesh)
        return out

    @staticmethod
    def from_trimesh(meshes: list, device: torch.device | str = "cpu") -> "PackedMeshes":
        """Pack trimesh meshes (geometry only)."""
        vertices = [torch.as_tensor(np.asarray(m.vertices), dtype=torch.float32) for m in meshes]
        counts = torch.tensor([len(v) for v in vertices], dtype=torch.int64)
        offsets = torch.cumsum(counts, 0) - counts
        faces = [torch.as_tensor(np.asarray(m.faces), dtype=torch.int64).reshape(-1, 3) + int(o)
                 for m, o in zip(meshes, offsets)]
        return PackedMeshes(torch.cat(vertices).reshape(-1, 3).to(device), torch.cat(faces).reshape(-1, 3).to(device),
                            counts.to(device), torch.tensor([len(f) for f in faces], dtype=torch.int64, device=device))


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted vertex normals: vertices [V,3], faces [F,3] (counter-clockwise = outward) -> [V,3] unit."""
    tri = vertices[faces]  # [F,3,3]
    face_normals = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(0, faces[:, corner], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
