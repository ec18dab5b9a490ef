"""Mesh Laplacian and the Laplacian smoothness loss used by mesh-deformation methods.

The uniform (umbrella) Laplacian ``L v_i = v_i - mean_{j in N(i)} v_j`` is zero for a vertex at the
centroid of its neighbours, so ``||L V||^2`` penalises bumps and folds between neighbouring
triangles (the regulariser of SoftRas / DIB-R, which the progressive method uses).
"""

from __future__ import annotations

import torch
from torch import Tensor


def mesh_edges(faces: Tensor) -> Tensor:
    """Unique undirected edges [E,2] (i < j) of a triangle mesh with faces [F,3]."""
    faces = faces.long()
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.sort(edges, dim=1).values
    return torch.unique(edges, dim=0)


def uniform_laplacian(faces: Tensor, num_vertices: int) -> Tensor:
    """Sparse [V,V] matrix I - D^-1 A of the mesh graph (float32, COO, coalesced)."""
    edges = mesh_edges(faces)
    rows = torch.cat([edges[:, 0], edges[:, 1]])
    cols = torch.cat([edges[:, 1], edges[:, 0]])
    degree = torch.zeros(num_vertices).index_add_(0, rows, torch.ones(rows.shape[0]))
    values = -1.0 / degree[rows].clamp_min(1)
    diag = torch.arange(num_vertices)
    indices = torch.cat([torch.stack([rows, cols]), torch.stack([diag, diag])], 1)
    values = torch.cat([values, (degree > 0).float()])
    return torch.sparse_coo_tensor(indices, values, (num_vertices, num_vertices), check_invariants=False).coalesce()


def laplacian_loss(verts: Tensor, laplacian: Tensor) -> Tensor:
    """Mean over the batch of sum_i ||(L V)_i||^2 for verts [B,V,3] and L from ``uniform_laplacian``."""
    batch, num_vertices, _ = verts.shape
    verts = verts.float()  # sparse products have no reduced-precision kernels
    lap = laplacian.to(device=verts.device, dtype=verts.dtype)
    flat = verts.transpose(0, 1).reshape(num_vertices, -1)  # [V, B*3]
    delta = torch.sparse.mm(lap, flat).reshape(num_vertices, batch, 3)
    return delta.square().sum((0, 2)).mean()
