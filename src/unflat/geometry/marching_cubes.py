"""Marching cubes: a scalar field on a regular grid -> a triangle mesh in unflat's world frame.

Grid convention (used everywhere in unflat): ``field[i, j, k]`` is the value at world point
``(x_i, y_j, z_k)`` with ``x_i = lo + i * (hi - lo) / (R_x - 1)`` (same for y, z), i.e. the first
axis is X, the second Y (up), the third Z, and samples include both ends of ``bounds``.
The returned mesh has outward-facing normals and counter-clockwise winding seen from outside.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import torch
import trimesh
from skimage import measure
from torch import Tensor

Inside = Literal["below", "above"]
"""Which side of ``level`` is solid: "below" for signed distances (negative inside), "above" for
densities/occupancies (large inside)."""


def grid_points(resolution: int | tuple[int, int, int], bounds: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """World coordinates of every grid sample, [Rx, Ry, Rz, 3], in the module's axis order."""
    res = (resolution,) * 3 if isinstance(resolution, int) else tuple(resolution)
    axes = [torch.linspace(bounds[0], bounds[1], r) for r in res]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def extract_mesh(
    field: Tensor | np.ndarray,
    level: float = 0.0,
    bounds: tuple[float, float] = (-1.0, 1.0),
    inside: Inside = "below",
    close_at_bounds: bool = True,
) -> trimesh.Trimesh:
    """Iso-surface of ``field`` [Rx,Ry,Rz] at ``level`` as a mesh in world coordinates.

    inside: "below" when values under ``level`` are solid (SDF), "above" for densities.
    close_at_bounds: pad the grid with an empty layer so a shape touching the bounding box is
        closed there (a watertight mesh) instead of left open; vertices stay inside ``bounds``.
    Returns an empty mesh (0 vertices) when the field never crosses ``level``.
    """
    volume = _as_numpy(field)
    if volume.ndim != 3 or min(volume.shape) < 2:
        raise ValueError(f"field must be [Rx,Ry,Rz] with every side >= 2, got {volume.shape}")
    if not np.isfinite(volume).all():
        raise ValueError("field contains NaN or infinite values")
    lo, hi = float(bounds[0]), float(bounds[1])
    spacing = tuple((hi - lo) / (n - 1) for n in volume.shape)
    origin = np.full(3, lo)
    if close_at_bounds:
        # One layer of clearly-empty samples all round; the grid origin moves one step out.
        empty = level + 1.0 if inside == "below" else level - 1.0
        volume = np.pad(volume, 1, mode="constant", constant_values=empty)
        origin = origin - np.asarray(spacing)
    if not (volume.min() < level < volume.max()):
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64), process=False)

    vertices, faces, _, _ = measure.marching_cubes(volume, level=level, spacing=spacing)
    vertices = vertices + origin
    if close_at_bounds:
        vertices = np.clip(vertices, lo, hi)
    faces = _orient_outward(vertices, faces, volume, origin, spacing, inside)
    # skimage already shares vertices between faces, so no processing (merging) is needed.
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def extract_from_function(
    fn: Callable[[Tensor], Tensor],
    resolution: int = 128,
    bounds: tuple[float, float] = (-1.0, 1.0),
    level: float = 0.0,
    inside: Inside = "below",
    chunk: int = 65536,
    device: torch.device | str | None = None,
    close_at_bounds: bool = True,
) -> trimesh.Trimesh:
    """Sample ``fn`` (points [N,3] -> values [N] or [N,1]) on a grid and extract its iso-surface.

    Points are built on ``device``; when it is None and ``fn`` is an ``nn.Module`` its parameters'
    device is used, so a field on the GPU is queried on the GPU. Queries run under ``no_grad`` in
    chunks of ``chunk`` points to bound memory.
    """
    field = sample_grid(fn, resolution, bounds, chunk, device)
    return extract_mesh(field, level=level, bounds=bounds, inside=inside, close_at_bounds=close_at_bounds)


def sample_grid(
    fn: Callable[[Tensor], Tensor],
    resolution: int | tuple[int, int, int],
    bounds: tuple[float, float] = (-1.0, 1.0),
    chunk: int = 65536,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Evaluate ``fn`` on the grid of ``grid_points`` -> float32 array [Rx,Ry,Rz]."""
    device = torch.device(device) if device is not None else module_device(fn)
    points = grid_points(resolution, bounds)
    shape = points.shape[:3]
    flat = points.reshape(-1, 3)
    out = np.empty(flat.shape[0], dtype=np.float32)
    with torch.no_grad():
        for start in range(0, flat.shape[0], chunk):
            values = fn(flat[start : start + chunk].to(device))
            out[start : start + chunk] = torch.as_tensor(values).reshape(-1).float().cpu().numpy()
    return out.reshape(shape)


# ---- helpers ------------------------------------------------------------------------------------
def _as_numpy(field: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(field, Tensor):
        field = field.detach().float().cpu().numpy()
    return np.asarray(field, dtype=np.float32)


def module_device(fn: object) -> torch.device:
    """The device of ``fn``'s parameters when it is an ``nn.Module`` with any, else CPU."""
    if isinstance(fn, torch.nn.Module):
        for parameter in fn.parameters():
            return parameter.device
    return torch.device("cpu")


def _orient_outward(
    vertices: np.ndarray,
    faces: np.ndarray,
    volume: np.ndarray,
    origin: np.ndarray,
    spacing: tuple[float, float, float],
    inside: Inside,
) -> np.ndarray:
    """Flip all faces when their normals point into the solid.

    Marching cubes winds every face the same way relative to the field gradient, so one majority
    vote of face normal vs gradient at the face centres decides for the whole mesh. The outward
    direction is +gradient when inside is "below" (values grow leaving the solid), else -gradient.
    """
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centres = tri.mean(axis=1)
    grads = np.stack(np.gradient(volume, *spacing), axis=-1)
    index = np.rint((centres - origin) / np.asarray(spacing)).astype(np.int64)
    index = np.clip(index, 0, np.asarray(volume.shape) - 1)
    g = grads[index[:, 0], index[:, 1], index[:, 2]]
    outward = g if inside == "below" else -g
    agreement = np.sign(np.einsum("ij,ij->i", normals, outward)).sum()
    return faces[:, ::-1].copy() if agreement < 0 else faces
