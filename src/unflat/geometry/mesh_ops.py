"""Mesh clean-up after extraction: components, smoothing, decimation, normalisation, colours.

Every function returns a new mesh and leaves its input untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
import trimesh
from torch import Tensor

from unflat.geometry.marching_cubes import module_device

ColourFn = Callable[[Tensor], "Tensor | np.ndarray"]
"""Maps world points [N,3] (float32 tensor) to RGB [N,3] in [0,1] (tensor or array)."""


@dataclass
class CleanupConfig:
    """Mesh clean-up applied after marching cubes, in this order."""

    keep_components: int = 1
    """Keep only the largest K connected components (by surface area); 0 keeps all."""
    smoothing: Literal["none", "taubin", "laplacian"] = "taubin"
    """Smoothing filter: Taubin (alternating shrink/inflate steps) keeps detail better; Laplacian smooths
    harder. Both keep the enclosed volume (Laplacian by rescaling after each pass)."""
    smoothing_iterations: int = 10
    """Smoothing passes (0 disables smoothing)."""
    face_budget: int = 0
    """Decimate to at most this many faces with quadric error decimation; 0 keeps all faces."""
    normalise: bool = False
    """Centre the mesh and scale it to fit [-1,1]^3 (shape generators already emit that box)."""


def cleanup(mesh: trimesh.Trimesh, cfg: CleanupConfig | None = None) -> trimesh.Trimesh:
    """Apply ``cfg``'s steps (components, smoothing, decimation, normalisation) in order."""
    cfg = cfg or CleanupConfig()
    if len(mesh.faces) == 0:
        return mesh.copy()
    if cfg.keep_components > 0:
        mesh = keep_largest_components(mesh, cfg.keep_components)
    if cfg.smoothing != "none" and cfg.smoothing_iterations > 0:
        mesh = smooth(mesh, cfg.smoothing, cfg.smoothing_iterations)
    if cfg.face_budget > 0:
        mesh = decimate(mesh, cfg.face_budget)
    if cfg.normalise:
        mesh = normalise_to_box(mesh)
    return mesh


def keep_largest_components(mesh: trimesh.Trimesh, k: int = 1) -> trimesh.Trimesh:
    """The ``k`` connected components (sharing edges) with the largest surface area, as one mesh."""
    parts = mesh.split(only_watertight=False)
    if len(parts) <= k:
        return mesh.copy()
    parts = sorted(parts, key=lambda part: part.area, reverse=True)[:k]
    return trimesh.util.concatenate(parts)


def drop_small_components(mesh: trimesh.Trimesh, min_area_fraction: float) -> trimesh.Trimesh:
    """Remove connected components whose surface area is below ``min_area_fraction`` of the largest one
    (floating specks of a generated field); colours and normals stay with the faces kept."""
    if min_area_fraction <= 0 or len(mesh.faces) == 0:
        return mesh
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    area = np.bincount(labels, weights=mesh.area_faces)
    keep = area[labels] >= min_area_fraction * area.max()
    if keep.all():
        return mesh
    out = mesh.copy()
    out.update_faces(keep)
    out.remove_unreferenced_vertices()
    return out


def smooth(
    mesh: trimesh.Trimesh, method: Literal["taubin", "laplacian"] = "taubin", iterations: int = 10
) -> trimesh.Trimesh:
    """Smooth vertex positions (removes marching-cubes staircase artefacts); faces are unchanged."""
    out = mesh.copy()
    if method == "taubin":
        trimesh.smoothing.filter_taubin(out, lamb=0.5, nu=0.53, iterations=iterations)
    elif method == "laplacian":
        trimesh.smoothing.filter_laplacian(out, lamb=0.5, iterations=iterations)
    else:
        raise ValueError(f"unknown smoothing method {method!r}; use 'taubin' or 'laplacian'")
    return out


def decimate(mesh: trimesh.Trimesh, face_budget: int) -> trimesh.Trimesh:
    """Quadric error decimation to at most ``face_budget`` faces (PyPI ``fast-simplification``).

    Vertex colours and textures are dropped by the decimator: colour the mesh afterwards.
    """
    if len(mesh.faces) <= face_budget:
        return mesh.copy()
    out = mesh.simplify_quadric_decimation(face_count=face_budget)
    # The decimator may land slightly above the budget on meshes with many boundary edges.
    if len(out.faces) > face_budget:
        out = out.simplify_quadric_decimation(face_count=face_budget)
    return out


def normalise_to_box(mesh: trimesh.Trimesh, half_size: float = 1.0) -> trimesh.Trimesh:
    """Centre the bounding box at the origin and scale the longest side to ``2 * half_size``."""
    out = mesh.copy()
    lo, hi = out.bounds
    extent = float((hi - lo).max())
    out.apply_translation(-(lo + hi) / 2)
    if extent > 0:
        out.apply_scale(2 * half_size / extent)
    return out


def query_colours(
    colour_fn: ColourFn, points: np.ndarray, chunk: int = 65536, device: torch.device | str | None = None
) -> np.ndarray:
    """Evaluate ``colour_fn`` on points [N,3] in chunks under no_grad -> float32 RGB [N,3] in [0,1].

    device: where the points are made (None: the colour function's parameters' device, or CPU).
    """
    device = torch.device(device) if device is not None else module_device(colour_fn)
    out = np.zeros((len(points), 3), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(points), chunk):
            batch = torch.as_tensor(points[start : start + chunk], dtype=torch.float32, device=device)
            rgb = torch.as_tensor(colour_fn(batch)).float().reshape(-1, 3).cpu().numpy()
            out[start : start + chunk] = rgb
    return np.clip(np.nan_to_num(out), 0.0, 1.0)


def colour_vertices(
    mesh: trimesh.Trimesh, colour_fn: ColourFn, chunk: int = 65536, device: torch.device | str | None = None
) -> trimesh.Trimesh:
    """A copy of ``mesh`` with RGBA uint8 vertex colours from ``colour_fn`` at the vertices."""
    rgb = query_colours(colour_fn, np.asarray(mesh.vertices), chunk, device)
    rgba = np.concatenate([np.rint(rgb * 255), np.full((len(rgb), 1), 255)], axis=1).astype(np.uint8)
    return trimesh.Trimesh(
        vertices=mesh.vertices.copy(), faces=mesh.faces.copy(), vertex_colors=rgba, process=False
    )
