"""Voxel grids through the off-the-shelf renderer, batched: binarise -> marching cubes -> OpenGL.

This is R_d(x_d) of IG-GAN (Sec. 3, Eq. 1): continuous occupancies x_c are binarised with a global
threshold per sample, x_d = [x_c > tau], tau ~ U[0,1] (Sec. 4.1), the binary grids are meshed by
marching cubes at 0.5 and the meshes are rendered by an off-the-shelf OpenGL renderer whose default
lighting is the paper's two beam lights (Sec. 4.2). Nothing here is differentiable.

The whole batch stays in tensors until it is drawn: marching cubes runs vectorised in PyTorch on the
voxels' device (``unflat.geometry.marching_cubes.marching_cubes``) and, with the ``moderngl`` backend,
the packed meshes go straight into one vertex buffer and one draw pass (``ModernGLRenderer``); the
``pyrender`` backend turns them into trimesh meshes and draws them one by one (``PyrenderRenderer``).

Voxel axis convention: ``voxels[b, 0, i, j, k]`` is the occupancy at world (x_i, y_j, z_k) on a grid
spanning [-extent, extent]^3 with both ends sampled (``unflat.geometry.marching_cubes``).
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import torch
import trimesh
from torch import Tensor

from unflat.cameras import Cameras
from unflat.geometry.marching_cubes import marching_cubes
from unflat.geometry.packed_meshes import PackedMeshes
from unflat.render.base import RenderOutput
from unflat.render.gl_backends import GLRenderer, RendererBackend, create_renderer, resolve_backend
from unflat.render.gl_scene import Lighting, Shading


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


def voxels_to_packed(voxels: Tensor | np.ndarray, level: float = 0.5, extent: float = 1.0) -> PackedMeshes:
    """Closed iso-surfaces of a batch of grids, on their device: voxels [B,1,R,R,R] or [B,R,R,R] -> B packed meshes."""
    grids = torch.as_tensor(voxels).detach()
    if grids.ndim == 5:
        grids = grids[:, 0]
    if grids.ndim != 4:
        raise ValueError(f"voxels must be [B,1,R,R,R] or [B,R,R,R], got {tuple(grids.shape)}")
    return marching_cubes(grids.float(), level, (-extent, extent), inside="above", close_at_bounds=True)


def voxels_to_meshes(
    voxels: Tensor | np.ndarray,
    level: float = 0.5,
    extent: float = 1.0,
    color: tuple[float, float, float] | None = (0.7, 0.7, 0.7),
) -> list[trimesh.Trimesh]:
    """Marching cubes of each grid: voxels [B,1,R,R,R] or [B,R,R,R] -> B closed trimesh meshes (possibly
    empty), vertex colour ``color`` (RGB in [0,1]) and smooth vertex normals set."""
    packed = voxels_to_packed(voxels, level, extent)
    meshes = packed.to_trimesh(color)
    normals = packed.vertex_normals().cpu().numpy()
    for mesh, start, count in zip(meshes, packed.vertex_offsets().tolist(), packed.vertex_counts.tolist()):
        if count:
            mesh.vertex_normals = normals[start : start + count]
    return meshes


class VoxelRenderPipeline:
    """R_d: batched voxel grids -> OpenGL images through an off-the-shelf renderer.

    resolution: image size S.  extent: half-size of the voxel box in world units.
    lighting: default ``Lighting.two_beams()`` (the paper's).  background / color: RGB in [0,1];
    they must match how the training images were rendered.  supersample: antialiasing factor.
    backend: "moderngl" (batched, one draw pass), "pyrender" (one mesh at a time) or "auto"
    (moderngl where a headless EGL context works, else pyrender); both draw the same pictures.
    shading: "smooth" interpolates marching-cubes vertex normals, the usual way to show an iso-surface.
    The renderer is created on first use and shared by pipelines with the same settings
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
        backend: RendererBackend = "auto",
        shading: Shading = "smooth",
    ) -> None:
        self.resolution, self.extent = resolution, extent
        self.lighting, self.background, self.color = lighting, tuple(background), tuple(color)
        self.supersample, self.shading = supersample, shading
        self.backend = resolve_backend(backend)
        self._renderer: GLRenderer | None = None

    @property
    def renderer(self) -> GLRenderer:
        if self._renderer is None:
            self._renderer = shared_renderer(self.resolution, self.lighting, self.background, self.supersample,
                                             self.shading, self.backend)
        return self._renderer

    def render_meshes(self, meshes: PackedMeshes, cameras: Cameras) -> "Future[RenderOutput]":
        """Draw one packed mesh per camera -> a future RenderOutput on the CPU (rgb [B,3,S,S] in [0,1]).
        With moderngl the drawing runs on the renderer's thread; the meshes are copied off first."""
        renderer = self.renderer
        normals = meshes.vertex_normals()
        if self.backend == "moderngl":
            return renderer.render_packed_async(meshes, cameras, self.color, normals=normals)
        trimeshes = meshes.to_trimesh(self.color)
        normals = normals.cpu().numpy()
        for mesh, start, count in zip(trimeshes, meshes.vertex_offsets().tolist(), meshes.vertex_counts.tolist()):
            if count:
                mesh.vertex_normals = normals[start : start + count]
        done: Future[RenderOutput] = Future()
        done.set_result(renderer.render(trimeshes, cameras.to("cpu"), compute_normals=False))
        return done

    @torch.no_grad()
    def render_async(self, voxels: Tensor, cameras: Cameras, thresholds: Tensor | float = 0.5) -> "Future[RenderOutput]":
        """Binarise at ``thresholds`` ([B] or one float), mesh on the voxels' device, start drawing."""
        binary = binarise(voxels.detach().float(), thresholds)
        return self.render_meshes(voxels_to_packed(binary, 0.5, self.extent), cameras)

    def render(self, voxels: Tensor, cameras: Cameras, thresholds: Tensor | float = 0.5) -> RenderOutput:
        """``render_async`` and wait: -> RenderOutput on the CPU."""
        return self.render_async(voxels, cameras, thresholds).result()

    def images(self, voxels: Tensor, cameras: Cameras, thresholds: Tensor | float = 0.5) -> Tensor:
        """Like ``render`` but returns only the images, [B,3,S,S] in [-1,1] on ``voxels.device``."""
        return self.render(voxels, cameras, thresholds).rgb.to(voxels.device) * 2.0 - 1.0


# One renderer per setting per process. Creating and garbage-collecting renderers (one per method
# instance) lets a dead pyrender renderer's __del__ destroy its context in the middle of another
# renderer's draw call (seen on OSMesa as "ShaderLinkError: Link failure"), so they are kept.
_RENDERERS: dict[tuple, GLRenderer] = {}


def shared_renderer(resolution: int, lighting: Lighting | None = None,
                    background: tuple[float, float, float] = (1.0, 1.0, 1.0), supersample: int = 1,
                    shading: Shading = "smooth", backend: RendererBackend = "auto") -> GLRenderer:
    """The process's renderer for these settings (created on first use, never closed)."""
    backend = resolve_backend(backend)
    key = (resolution, lighting, tuple(background), supersample, shading, backend)
    if key not in _RENDERERS:
        _RENDERERS[key] = create_renderer(backend, resolution, lighting=lighting, background=background,
                                          supersample=supersample, shading=shading, compute_normals=False)
    return _RENDERERS[key]
