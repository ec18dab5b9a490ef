"""What both OpenGL renderers share: lights, shading modes and mesh preparation (no GL calls here).

``ModernGLRenderer`` (moderngl_backend.py, the default) and ``PyrenderRenderer`` (pyrender_backend.py,
optional extra ``unflat[pyrender]``) take the same ``Lighting`` and ``Shading`` and prepare meshes with the
same helpers, so they draw the same pictures.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np

Shading = Literal["auto", "flat", "smooth"]
"""How normals are interpolated: "flat" = one normal per face; "smooth" = interpolated vertex
normals; "auto" = smooth across edges sharper than ``crease_angle_deg`` are kept sharp (boxes stay
boxes, cylinders look round)."""


@dataclass(frozen=True)
class DirectionalLight:
    """A beam (directional) light attached to the camera.

    The light comes *from* the direction obtained by turning the camera's view of the object by
    ``azimuth_deg`` to the camera's right and ``elevation_deg`` upwards (negative = from below).
    (0, 0) is a headlight shining along the viewing direction.
    """

    azimuth_deg: float
    elevation_deg: float
    intensity: float = 3.0
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def direction_camera_gl(self) -> np.ndarray:
        """Unit vector from the object towards the light, in OpenGL camera axes (x right, y up, z back)."""
        az, el = math.radians(self.azimuth_deg), math.radians(self.elevation_deg)
        return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


@dataclass(frozen=True)
class Lighting:
    """Camera-attached directional lights plus a uniform ambient term (colours in [0,1])."""

    lights: tuple[DirectionalLight, ...] = ()
    ambient: tuple[float, float, float] = (0.3, 0.3, 0.3)

    @staticmethod
    def two_beams(
        azimuth_deg: float = 45.0, elevation_deg: float = -45.0, intensity: float = 2.5, ambient: float = 0.3
    ) -> "Lighting":
        """IG-GAN's setting (Sec. 4.2): two beam lights illuminating the object from 45 degrees
        below the camera and 45 degrees to its left and right; plus ambient so nothing is black."""
        return Lighting(
            lights=(
                DirectionalLight(-azimuth_deg, elevation_deg, intensity),
                DirectionalLight(azimuth_deg, elevation_deg, intensity),
            ),
            ambient=(ambient,) * 3,
        )

    @staticmethod
    def headlight(intensity: float = 3.0, ambient: float = 0.3) -> "Lighting":
        """One light shining along the viewing direction."""
        return Lighting(lights=(DirectionalLight(0.0, 0.0, intensity),), ambient=(ambient,) * 3)



def load_triton_before_mesa() -> None:
    """Import triton (when installed) before Mesa loads its LLVM for software rendering.

    Mesa's llvmpipe (OSMesa, or EGL on a CPU machine) and triton each carry an LLVM; loading triton's
    second (torch imports it lazily, e.g. when the first optimizer is built) crashed the process with a
    segmentation fault here. In the other order both work. Only in a main process: importing triton
    in a worker process of `unflat dataset synth` (forkserver) hung it.
    """
    import importlib.util  # noqa: PLC0415
    import multiprocessing  # noqa: PLC0415

    if multiprocessing.parent_process() is not None:
        return
    if "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401, PLC0415
        except Exception:  # noqa: BLE001  (a broken triton install is torch's problem, not the renderer's)
            pass


def voxels_to_mesh(grid: np.ndarray, threshold: float = 0.5, bounds: tuple[float, float] = (-1.0, 1.0)) -> "object":
    """Occupancy grid [D,D,D] (axes X, Y, Z) -> closed trimesh surface at ``threshold``."""
    from unflat.geometry.marching_cubes import extract_mesh  # noqa: PLC0415

    return extract_mesh(grid, level=threshold, bounds=bounds, inside="above")


def voxel_meshes(voxels: "object", num_cameras: int, threshold: float = 0.5,
                 color: tuple[float, float, float] = (0.7, 0.7, 0.7),
                 bounds: tuple[float, float] = (-1.0, 1.0)) -> list:
    """Occupancy grids [B,D,D,D] (one per camera) or [D,D,D] (shared) -> one coloured trimesh per grid
    (marching cubes at ``threshold``; grid axes X, Y, Z spanning ``bounds``)."""
    import torch  # noqa: PLC0415

    grids = voxels.detach().float().cpu().numpy() if isinstance(voxels, torch.Tensor) else np.asarray(voxels, np.float32)
    if grids.ndim == 3:
        grids = grids[None]
    if grids.ndim != 4 or len(set(grids.shape[1:])) != 1:
        raise ValueError(f"voxels must be [B,D,D,D] or [D,D,D], got {tuple(grids.shape)}")
    if len(grids) not in (1, num_cameras):
        raise ValueError(f"{len(grids)} voxel grids for {num_cameras} cameras")
    rgba = np.array([*(np.asarray(color) * 255).round(), 255], np.uint8)
    meshes = []
    for grid in grids:
        mesh = voxels_to_mesh(grid, threshold, bounds)
        if len(mesh.faces):
            mesh.visual.vertex_colors = np.tile(rgba, (len(mesh.vertices), 1))
        meshes.append(mesh)
    return meshes


def crease_shaded(mesh: "object", angle_deg: float) -> "object":
    """A copy with one vertex per face corner and per-corner normals: the area-weighted mean of the
    normals of the faces around that vertex that lie within ``angle_deg`` of the corner's own face.

    Same result as ``trimesh.graph.smooth_shade`` (which is ~30x slower on coloured meshes because it
    splits the mesh into sub-meshes); colours and UVs are carried per corner.
    """
    import trimesh  # noqa: PLC0415

    faces = np.asarray(mesh.faces)
    num_faces, num_vertices = len(faces), len(mesh.vertices)
    face_normals = np.asarray(mesh.face_normals)
    area = np.asarray(mesh.area_faces)
    corner_vertex = faces.reshape(-1)  # [3F]
    corner_face = np.repeat(np.arange(num_faces), 3)  # [3F]
    order = np.argsort(corner_vertex, kind="stable")
    faces_by_vertex = corner_face[order]  # incident faces, grouped by vertex
    degree = np.bincount(corner_vertex, minlength=num_vertices)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    # Every (corner, incident face of the corner's vertex) pair.
    corner_degree = degree[corner_vertex]
    pair_corner = np.repeat(np.arange(3 * num_faces), corner_degree)
    offset = np.arange(len(pair_corner)) - np.repeat(np.cumsum(corner_degree) - corner_degree, corner_degree)
    pair_face = faces_by_vertex[start[corner_vertex[pair_corner]] + offset]
    similar = (face_normals[corner_face[pair_corner]] * face_normals[pair_face]).sum(1) >= math.cos(math.radians(angle_deg))
    weights = area[pair_face] * similar
    normals = np.stack([np.bincount(pair_corner, weights * face_normals[pair_face, k], minlength=3 * num_faces)
                        for k in range(3)], 1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 1e-12, normals / np.maximum(length, 1e-12), np.repeat(face_normals, 3, axis=0))
    vertices = np.asarray(mesh.vertices)[corner_vertex]
    out = trimesh.Trimesh(vertices, np.arange(3 * num_faces).reshape(-1, 3), vertex_normals=normals, process=False)
    visual = mesh.visual
    if visual.kind == "vertex":
        out.visual.vertex_colors = np.asarray(visual.vertex_colors)[corner_vertex]
    elif visual.kind == "face":
        out.visual.vertex_colors = np.repeat(np.asarray(visual.face_colors), 3, axis=0)
    elif visual.kind == "texture" and getattr(visual, "uv", None) is not None and len(visual.uv) == num_vertices:
        out.visual = trimesh.visual.TextureVisuals(uv=np.asarray(visual.uv)[corner_vertex], material=visual.material)
    elif visual.kind == "texture":
        out.visual = trimesh.visual.TextureVisuals(material=visual.material)
    return out


def unmerge_face_colours(mesh: "object") -> "object":
    import trimesh  # noqa: PLC0415

    tri = np.asarray(mesh.vertices)[np.asarray(mesh.faces)].reshape(-1, 3)
    out = trimesh.Trimesh(tri, np.arange(len(tri)).reshape(-1, 3), process=False)
    out.visual.vertex_colors = np.repeat(np.asarray(mesh.visual.face_colors), 3, axis=0)
    return out


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """Unit normals [N,3] -> RGBA uint8 [N,4] with n = c / 127.5 - 1."""
    rgb = np.clip(np.rint((normals + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def box_down(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` blocks of [S,S,...] -> [S/f,S/f,...]."""
    if factor == 1:
        return image
    s = image.shape[0] // factor
    return image.reshape(s, factor, s, factor, *image.shape[2:]).mean(axis=(1, 3))


def masked_mean_down(values: np.ndarray, hit: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``values`` over the covered sub-pixels of each block (0 where none is covered)."""
    if factor == 1:
        return np.where(hit if values.ndim == 2 else hit[..., None], values, 0.0).astype(np.float32)
    weight = hit.astype(np.float32) if values.ndim == 2 else hit.astype(np.float32)[..., None]
    total = box_down(values * weight, factor)
    count = box_down(weight, factor)
    return np.where(count > 0, total / np.maximum(count, 1e-12), 0.0).astype(np.float32)
