"""Voxel grids through the off-the-shelf renderer, batched: binarise -> marching cubes -> OpenGL.

This is R_d(x_d) of IG-GAN (Sec. 3, Eq. 1): continuous occupancies x_c are binarised with a global
threshold per sample, x_d = [x_c > tau], tau ~ U[0,1] (Sec. 4.1), the binary grid is meshed by
marching cubes at 0.5 and the mesh is rendered by the shared ``OpenGLRenderer`` (pyrender), whose
default lighting is the paper's two beam lights (Sec. 4.2). Nothing here is differentiable.

Voxel axis convention: ``voxels[b, 0, i, j, k]`` is the occupancy at world (x_i, y_j, z_k) on a grid
spanning [-extent, extent]^3 with both ends sampled (``unflat.geometry.marching_cubes``).
"""

from __future__ import annotations

import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

import numpy as np
import torch
import trimesh
from torch import Tensor

from unflat.cameras import Cameras
from unflat.geometry.marching_cubes import extract_mesh
from unflat.render.base import RenderOutput
from unflat.render.opengl import Lighting, OpenGLRenderer, Shading


def sample_thresholds(n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> Tensor:
    """tau ~ U[0,1], one global threshold per sample: [n]. Uses the global RNG unless a generator is given."""
    if generator is None:
        return torch.rand(n, device=device)
    return torch.rand(n, generator=generator).to(device)


def binarise(voxels: Tensor, thresholds: Tensor | float) -> Tensor:
    """x_d = [x_c > tau]: voxels [B,1,R,R,R] in [0,1], thresholds [B] or a float -> {0,1} float, same shape."""
    tau = torch.as_tensor(thresholds, dtype=voxels.dtype, device=voxels.device)
    if tau.ndim == 1:
        tau = tau.view(-1, *([1] * (voxels.ndim - 1)))
    return (voxels > tau).to(voxels.dtype)


def voxels_to_meshes(
    voxels: Tensor | np.ndarray,
    level: float = 0.5,
    extent: float = 1.0,
    color: tuple[float, float, float] | None = (0.7, 0.7, 0.7),
    workers: int = 1,
) -> list[trimesh.Trimesh]:
    """Marching cubes of each grid: voxels [B,1,R,R,R] or [B,R,R,R] -> B closed meshes (possibly empty).

    workers > 1 meshes the grids in that many worker processes (scikit-image's marching cubes holds
    the GIL, so threads would not help); the pool is started once per process and reused. On a GPU
    machine this is what keeps the off-the-shelf renderer's CPU half from dominating a step.
    """
    grids = voxels.detach().float().cpu().numpy() if isinstance(voxels, Tensor) else np.asarray(voxels, np.float32)
    if grids.ndim == 5:
        grids = grids[:, 0]
    if grids.ndim != 4:
        raise ValueError(f"voxels must be [B,1,R,R,R] or [B,R,R,R], got {grids.shape}")
    arrays = None
    if workers > 1 and len(grids) > 1 and workers not in _BROKEN_POOLS:
        # binary grids travel as uint8 (a quarter of the bytes)
        binary = bool(np.isin(grids, (0.0, 1.0)).all())
        payload = grids.astype(np.uint8) if binary else grids
        try:
            arrays = list(_mesh_pool(workers).map(_surface_arrays, payload, [level] * len(grids), [extent] * len(grids)))
        except BrokenProcessPool:
            _BROKEN_POOLS.add(workers)
            _POOLS.pop(workers, None)
            warnings.warn("marching-cubes worker processes failed to start; meshing in this process from now on. "
                          "Scripts that train or sample with mesh_workers > 1 need an `if __name__ == \"__main__\":` "
                          "guard (worker processes are spawned and re-import the main module).", stacklevel=2)
    if arrays is None:
        arrays = [_surface_arrays(grid, level, extent) for grid in grids]
    rgba = None if color is None else np.array([*(np.asarray(color) * 255).round(), 255], np.uint8)
    meshes = []
    for vertices, faces in arrays:
        mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
        if rgba is not None and len(faces):
            mesh.visual.vertex_colors = np.tile(rgba, (len(vertices), 1))
        meshes.append(mesh)
    return meshes


def _surface_arrays(grid: np.ndarray, level: float, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V,3] float, faces [F,3] int) of one grid's iso-surface; runs in worker processes too."""
    mesh = extract_mesh(np.asarray(grid, np.float32), level=level, bounds=(-extent, extent), inside="above")
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


_POOLS: dict[int, ProcessPoolExecutor] = {}
_BROKEN_POOLS: set[int] = set()


def _mesh_pool(workers: int) -> ProcessPoolExecutor:
    """A persistent pool of ``workers`` spawned processes (spawn: no OpenGL / CUDA state is forked)."""
    if workers not in _POOLS:
        _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_init_mesh_worker)
    return _POOLS[workers]


def _init_mesh_worker() -> None:
    torch.set_num_threads(1)


class VoxelRenderPipeline:
    """R_d: batched voxel grids -> OpenGL images through the shared off-the-shelf renderer.

    resolution: image size S.  extent: half-size of the voxel box in world units.
    lighting: default ``Lighting.two_beams()`` (the paper's).  background / color: RGB in [0,1];
    they must match how the training images were rendered.  mesh_workers: processes for marching cubes.
    shading: "smooth" (default) interpolates marching-cubes vertex normals, the usual way to show an
    iso-surface; the renderer's "auto" crease detection costs seconds on the noisy surfaces of an
    untrained generator, so it is not used in the training loop.
    The OpenGL renderer is created on first use and shared by pipelines with the same settings
    (``shared_renderer``); it cannot be pickled or shared between processes.
    """

    def __init__(
        self,
        resolution: int,
        extent: float = 1.0,
        lighting: Lighting | None = None,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
        color: tuple[float, float, float] = (0.7, 0.7, 0.7),
        supersample: int = 1,
        mesh_workers: int = 1,
        shading: Shading = "smooth",
    ) -> None:
        self.resolution, self.extent = resolution, extent
        self.lighting, self.background, self.color = lighting, background, color
        self.supersample, self.mesh_workers, self.shading = supersample, mesh_workers, shading
        self._renderer: OpenGLRenderer | None = None

    @property
    def renderer(self) -> OpenGLRenderer:
        if self._renderer is None:
            self._renderer = shared_renderer(self.resolution, self.lighting, self.background, self.supersample, self.shading)
        return self._renderer

    def render_meshes(self, meshes: Sequence[trimesh.Trimesh], cameras: Cameras) -> RenderOutput:
        """One mesh per camera -> RenderOutput on the CPU (rgb [B,3,S,S] in [0,1])."""
        return self.renderer.render(list(meshes), cameras.to("cpu"), compute_normals=False)

    @torch.no_grad()
    def render(self, voxels: Tensor, cameras: Cameras, thresholds: Tensor | float = 0.5) -> RenderOutput:
        """Binarise at ``thresholds`` ([B] or one float), mesh, render: -> RenderOutput on the CPU."""
        binary = binarise(voxels.detach().float(), thresholds)
        meshes = voxels_to_meshes(binary, level=0.5, extent=self.extent, color=self.color, workers=self.mesh_workers)
        return self.render_meshes(meshes, cameras)

    @torch.no_grad()
    def images(self, voxels: Tensor, cameras: Cameras, thresholds: Tensor | float = 0.5) -> Tensor:
        """Like ``render`` but returns only the images, [B,3,S,S] in [-1,1] on ``voxels.device``."""
        return self.render(voxels, cameras, thresholds).rgb.to(voxels.device) * 2.0 - 1.0


# One OpenGL renderer per setting per process. Creating and garbage-collecting renderers (one per
# method instance) lets a dead renderer's __del__ destroy its context in the middle of another
# renderer's draw call (seen on OSMesa as "ShaderLinkError: Link failure"), so they are kept.
_RENDERERS: dict[tuple, OpenGLRenderer] = {}


def shared_renderer(resolution: int, lighting: Lighting | None = None,
                    background: tuple[float, float, float] = (1.0, 1.0, 1.0), supersample: int = 1,
                    shading: Shading = "smooth") -> OpenGLRenderer:
    """The process's OpenGLRenderer for these settings (created on first use, never closed)."""
    key = (resolution, lighting, tuple(background), supersample, shading)
    if key not in _RENDERERS:
        _RENDERERS[key] = OpenGLRenderer(resolution, lighting=lighting, background=background,
                                         supersample=supersample, shading=shading, compute_normals=False)
    return _RENDERERS[key]
