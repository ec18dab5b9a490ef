"""The second off-the-shelf OpenGL renderer: pyrender, headless, one mesh at a time (extra ``unflat[pyrender]``).

The default renderer is ``ModernGLRenderer`` (moderngl_backend.py); this one draws the same pictures and
stays as an independent second implementation (tests compare the two when pyrender is installed) and for
users who ask for it (``--renderer pyrender``).

This is the "industrial renderer" of the IG-GAN paper (which used pyrender too): it renders
triangle meshes with vertex colours or textures under directional lights, and returns colour,
coverage mask, camera-space depth and world-space normals in unflat's ``RenderOutput``.

OpenGL platform. PyOpenGL binds to a platform (EGL, OSMesa, GLX) when it is first imported, so
the choice happens lazily in ``PyrenderRenderer.__init__`` before pyrender/OpenGL are imported:

1. an explicit ``platform=`` argument, else
2. an existing ``PYOPENGL_PLATFORM`` environment variable (always respected), else
3. ``egl`` when an NVIDIA driver and libEGL are present (GPU machines: ~1 ms per frame), else
4. ``osmesa`` (pure CPU software rendering; Debian ``libosmesa6``).

If OpenGL was already imported by something else, its platform cannot change any more; the
renderer then uses whatever PyOpenGL picked and says so in ``platform``.

Same pictures on every platform: pyrender would multisample (4x MSAA) on EGL but cannot on OSMesa;
unflat switches multisampling off so both rasterise at pixel centres, and antialiasing comes from
``supersample`` (render larger, box-filter down), identical everywhere.
"""

from __future__ import annotations

import ctypes.util
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from unflat.cameras import Cameras
from unflat.render.base import RenderOutput
from unflat.render.gl_scene import (
    Lighting,
    Shading,
    box_down,
    crease_shaded,
    encode_normals,
    load_triton_before_mesa,
    masked_mean_down,
    unmerge_face_colours,
    voxel_meshes,
)

# ---------------------------------------------------------------------------------------------
# Platform choice
# ---------------------------------------------------------------------------------------------
def _nvidia_egl_available() -> bool:
    has_driver = os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")
    return has_driver and ctypes.util.find_library("EGL") is not None


def choose_platform(requested: str | None = None) -> str:
    """Pick the PyOpenGL platform (see the module docstring) and export it as PYOPENGL_PLATFORM.

    Must run before ``OpenGL`` is first imported in this process to have an effect.
    """
    if "OpenGL" in sys.modules:
        # Too late to choose: report what the process already uses.
        return os.environ.get("PYOPENGL_PLATFORM", requested or "default")
    platform = requested or os.environ.get("PYOPENGL_PLATFORM") or ("egl" if _nvidia_egl_available() else "osmesa")
    os.environ["PYOPENGL_PLATFORM"] = platform
    # pyrender imports pyglet's window module, which needs X11 libraries unless pyglet is headless.
    os.environ.setdefault("PYGLET_HEADLESS", "true")
    return platform


def _no_opengl(platform: str, exc: Exception) -> Exception:
    from unflat.errors import UserError  # noqa: PLC0415

    hint = {
        "osmesa": "install OSMesa (Debian/Ubuntu: apt-get install libosmesa6) and PyOpenGL>=3.1.7",
        "egl": "install the EGL/GL libraries (Debian/Ubuntu: apt-get install libegl1 libgl1 libgles2) or set PYOPENGL_PLATFORM=osmesa",
    }.get(platform, "set PYOPENGL_PLATFORM to egl (GPU) or osmesa (CPU)")
    return UserError(f"OpenGL renderer unavailable on platform '{platform}' ({type(exc).__name__}: {exc}); {hint}")


def _look_at_pose(direction: np.ndarray) -> np.ndarray:
    """4x4 rotation whose +z axis is ``direction`` (a pyrender light shines along its -z)."""
    z = direction / np.linalg.norm(direction)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.99 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, y, z
    return pose


# ---------------------------------------------------------------------------------------------
# Renderer
# ---------------------------------------------------------------------------------------------
@dataclass
class _PreparedMesh:
    colour: object  # pyrender.Mesh for the lit colour pass
    normals: object | None  # pyrender.Mesh whose vertex colours encode world normals
    source: object = field(repr=False, default=None)  # keeps the trimesh alive while cached


class PyrenderRenderer:
    """Renders trimesh meshes with pyrender, offscreen; one OffscreenRenderer and scene reused.

    Args:
        resolution: output images are ``resolution x resolution``.
        lighting: camera-attached lights (default: IG-GAN's two beam lights + ambient).
        background: RGB in [0,1] behind the object.
        platform: "egl" | "osmesa" | None (automatic; see module docstring).
        shading: "auto" | "flat" | "smooth" normal interpolation (see ``Shading``).
        crease_angle_deg: for "auto", edges sharper than this stay sharp.
        supersample: render at ``supersample * resolution`` and box-filter down (antialiasing and
            soft masks identical on every platform).
        znear, zfar: clipping planes in world units.
        compute_normals: also render world-space normals (a second, unlit pass).
        unlit: render plain albedo (vertex colours / texture, exactly as stored) without lighting.
    """

    def __init__(
        self,
        resolution: int,
        lighting: Lighting | None = None,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
        platform: str | None = None,
        shading: Shading = "auto",
        crease_angle_deg: float = 30.0,
        supersample: int = 1,
        znear: float = 0.05,
        zfar: float = 100.0,
        compute_normals: bool = True,
        unlit: bool = False,
    ) -> None:
        if resolution <= 0 or supersample <= 0:
            raise ValueError("resolution and supersample must be positive")
        self.platform = choose_platform(platform)
        load_triton_before_mesa()
        try:
            import pyrender  # noqa: PLC0415  (lazy: PYOPENGL_PLATFORM must be set first)
        except Exception as exc:  # noqa: BLE001  (PyOpenGL raises various errors for a missing library)
            raise _no_opengl(self.platform, exc) from exc

        self._pyrender = pyrender
        self.resolution = resolution
        self.lighting = lighting if lighting is not None else Lighting.two_beams()
        self.background = tuple(float(c) for c in background)
        self.shading: Shading = shading
        self.crease_angle_deg = crease_angle_deg
        self.supersample = supersample
        self.compute_normals = compute_normals
        self.unlit = unlit
        self.znear, self.zfar = znear, zfar
        size = resolution * supersample
        self._size = size
        try:
            self._renderer = pyrender.OffscreenRenderer(size, size)
        except Exception as exc:  # noqa: BLE001
            raise _no_opengl(self.platform, exc) from exc
        _use_stable_program_cache(self._renderer)
        _keep_shared_egl_display(self._renderer)
        _single_sample_rasterisation()
        self._scene = pyrender.Scene(bg_color=[*self.background, 0.0], ambient_light=list(self.lighting.ambient))
        self._camera = pyrender.IntrinsicsCamera(fx=size, fy=size, cx=size / 2, cy=size / 2, znear=znear, zfar=zfar)
        self._camera_node = self._scene.add(self._camera, pose=np.eye(4))
        self._light_nodes = []
        self._light_offsets = []
        for light in self.lighting.lights:
            node = self._scene.add(pyrender.DirectionalLight(color=np.array(light.color), intensity=light.intensity))
            self._light_nodes.append(node)
            self._light_offsets.append(_look_at_pose(light.direction_camera_gl()))
        self._mesh_nodes: list = []
        self._current_key: int | None = None

    # ---- public API -------------------------------------------------------------------------
    def render(
        self, meshes: "Sequence[object] | object", cameras: Cameras, compute_normals: bool | None = None
    ) -> RenderOutput:
        """Render one mesh for all cameras, or one mesh per camera (``len(meshes) == len(cameras)``).

        meshes: trimesh.Trimesh (vertex colours, face colours, a texture, or none -> grey); an empty
            mesh (no faces) renders as background.
        Returns rgb [B,3,H,W] in [0,1], mask [B,1,H,W], depth [B,1,H,W] (camera z, 0 = background),
        normals [B,3,H,W] world-space unit vectors (zeros on background) or None.
        """
        with_normals = self.compute_normals if compute_normals is None else compute_normals
        b = len(cameras)
        mesh_list = list(meshes) if isinstance(meshes, (list, tuple)) else [meshes] * b
        if len(mesh_list) != b:
            raise ValueError(f"got {len(mesh_list)} meshes for {b} cameras; pass one mesh or one per camera")
        poses = cameras.opengl_cam2world().detach().double().cpu().numpy()
        intrinsics = cameras.intrinsics.detach().double().cpu().numpy()
        r, s = self.resolution, self.supersample
        rgb = np.empty((b, r, r, 3), np.float32)
        mask = np.empty((b, r, r), np.float32)
        depth = np.empty((b, r, r), np.float32)
        normals = np.zeros((b, r, r, 3), np.float32) if with_normals else None
        prepared: dict[int, _PreparedMesh | None] = {}
        for i, mesh in enumerate(mesh_list):
            key = id(mesh)
            if key not in prepared:
                prepared[key] = self._prepare(mesh, with_normals)
            self._show(key, prepared[key])
            self._set_camera(poses[i], intrinsics[i])
            colour, z = self._render_pass(prepared[key], lit=True)
            hit = z > 0
            rgb[i] = box_down(colour.astype(np.float32) / 255.0, s)
            mask[i] = box_down(hit.astype(np.float32), s)
            depth[i] = masked_mean_down(z, hit, s)
            if normals is not None and prepared[key] is not None:
                encoded, _ = self._render_pass(prepared[key], lit=False)
                n = encoded.astype(np.float32) / 127.5 - 1.0
                n = masked_mean_down(n, hit, s)
                length = np.linalg.norm(n, axis=-1, keepdims=True)
                normals[i] = np.where(length > 1e-6, n / np.maximum(length, 1e-6), 0.0)
        self._drop_meshes()  # do not keep per-call meshes alive between calls
        return RenderOutput(
            rgb=torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(),
            mask=torch.from_numpy(mask)[:, None],
            depth=torch.from_numpy(depth)[:, None],
            normals=None if normals is None else torch.from_numpy(normals).permute(0, 3, 1, 2).contiguous(),
        )

    def render_voxels(
        self,
        voxels: Tensor | np.ndarray,
        cameras: Cameras,
        threshold: float = 0.5,
        color: tuple[float, float, float] = (0.7, 0.7, 0.7),
        bounds: tuple[float, float] = (-1.0, 1.0),
        compute_normals: bool | None = None,
    ) -> RenderOutput:
        """Render occupancy grids: voxels [B,D,D,D] (one per camera) or [D,D,D] (shared), values
        above ``threshold`` are solid. Grid axes are (X, Y, Z) spanning ``bounds`` (see
        ``unflat.geometry.marching_cubes``); surfaces come from marching cubes at ``threshold``."""
        meshes = voxel_meshes(voxels, len(cameras), threshold, color, bounds)
        return self.render(meshes[0] if len(meshes) == 1 else meshes, cameras, compute_normals=compute_normals)

    def close(self) -> None:
        """Free the OpenGL context (also happens at garbage collection)."""
        if getattr(self, "_renderer", None) is not None:
            self._renderer.delete()
            self._renderer = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown: GL may already be gone)
            pass

    # ---- internals --------------------------------------------------------------------------
    def _prepare(self, mesh: object, with_normals: bool) -> _PreparedMesh | None:
        import trimesh  # noqa: PLC0415

        if not isinstance(mesh, trimesh.Trimesh):
            raise TypeError(f"expected trimesh.Trimesh, got {type(mesh).__name__}")
        if len(mesh.faces) == 0:
            return None
        pr = self._pyrender
        if self.shading == "flat":
            shaded, smooth = mesh, False
        elif self.shading == "smooth":
            shaded, smooth = mesh, True
        else:
            shaded, smooth = crease_shaded(mesh, self.crease_angle_deg), True
        if shaded.visual.kind == "face" and smooth:
            # pyrender cannot interpolate face colours; unmerge so each face owns its vertices.
            shaded = unmerge_face_colours(shaded)
        colour = pr.Mesh.from_trimesh(shaded, smooth=smooth)
        normal_mesh = None
        if with_normals:
            if smooth:
                encoded = trimesh.Trimesh(shaded.vertices, shaded.faces, process=False)
                n = np.asarray(shaded.vertex_normals)
                encoded.visual.vertex_colors = encode_normals(n)
            else:
                tri = np.asarray(mesh.vertices)[np.asarray(mesh.faces)].reshape(-1, 3)
                faces = np.arange(len(tri)).reshape(-1, 3)
                encoded = trimesh.Trimesh(tri, faces, process=False)
                encoded.visual.vertex_colors = encode_normals(np.repeat(np.asarray(mesh.face_normals), 3, axis=0))
            normal_mesh = pr.Mesh.from_trimesh(encoded, smooth=True)
        return _PreparedMesh(colour, normal_mesh, mesh)

    def _show(self, key: int, prepared: _PreparedMesh | None) -> None:
        if self._current_key == key:
            return
        self._drop_meshes()
        if prepared is not None:
            self._mesh_nodes = [self._scene.add(prepared.colour)]
            if prepared.normals is not None:
                self._mesh_nodes.append(self._scene.add(prepared.normals))
        self._current_key = key

    def _drop_meshes(self) -> None:
        for node in self._mesh_nodes:
            self._scene.remove_node(node)
        self._mesh_nodes = []
        self._current_key = None

    def _set_camera(self, pose_gl: np.ndarray, intrinsics: np.ndarray) -> None:
        size = self._size
        self._camera.fx, self._camera.fy = intrinsics[0] * size, intrinsics[1] * size
        self._camera.cx, self._camera.cy = intrinsics[2] * size, intrinsics[3] * size
        self._scene.set_pose(self._camera_node, pose_gl)
        for node, offset in zip(self._light_nodes, self._light_offsets):
            self._scene.set_pose(node, pose_gl @ offset)

    def _render_pass(self, prepared: _PreparedMesh | None, lit: bool) -> tuple[np.ndarray, np.ndarray]:
        """One pass: (colour uint8 [S,S,3], linear depth float [S,S]). The unlit pass shows the
        normal-encoding mesh with FLAT (no lighting) so its colours come back unchanged."""
        flags = self._pyrender.RenderFlags
        if prepared is not None:
            prepared.colour.is_visible = lit
            if prepared.normals is not None:
                prepared.normals.is_visible = not lit
        plain = not lit or self.unlit
        colour, depth = self._renderer.render(self._scene, flags=flags.FLAT if plain else flags.NONE)
        return np.asarray(colour)[..., :3], np.asarray(depth, np.float32)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _use_stable_program_cache(offscreen: object) -> None:
    """Make pyrender reuse compiled shader programs across frames.

    pyrender keys its shader cache by ``OpenGL.contextdata.getContext()``, which under OSMesa
    returns a new ctypes object on every call, so every frame recompiled its shaders (30+ ms per
    frame, and the cache grew without bound). Each PyrenderRenderer owns its own context, so keying by
    shader files and defines alone is safe.
    """
    from pyrender.shader_program import ShaderProgramCache  # noqa: PLC0415

    class StableProgramCache(ShaderProgramCache):
        def __init__(self, shader_dir=None):
            super().__init__(shader_dir)
            self._stable: dict = {}

        def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
            key = (vertex_shader, fragment_shader, geometry_shader, tuple(sorted((defines or {}).items())))
            program = self._stable.get(key)
            if program is None:
                program = super().get_program(vertex_shader, fragment_shader, geometry_shader, defines)
                self._stable[key] = program
            return program

        def clear(self):
            self._stable.clear()
            super().clear()

    renderer = offscreen._renderer  # the pyrender.Renderer behind the OffscreenRenderer
    old = renderer._program_cache
    renderer._program_cache = StableProgramCache(old.shader_dir)


def _keep_shared_egl_display(offscreen: object) -> None:
    """Closing one renderer must not break the others.

    pyrender's EGL platform calls ``eglTerminate`` on the display when a renderer is deleted, but
    every renderer in a process shares that display, so all other live renderers then fail in
    ``eglMakeCurrent``. Destroy only this renderer's context; the display lives as long as the process.
    """
    platform = offscreen._platform
    if type(platform).__name__ != "EGLPlatform":
        return

    def delete_context() -> None:
        from OpenGL.EGL import eglDestroyContext  # noqa: PLC0415

        if platform._egl_display is not None and platform._egl_context is not None:
            eglDestroyContext(platform._egl_display, platform._egl_context)
        platform._egl_context = None

    platform.delete_context = delete_context


def _single_sample_rasterisation() -> None:
    """Rasterise at pixel centres on every platform.

    pyrender enables 4x MSAA when the platform has framebuffer objects (EGL) but OSMesa has none, so
    colours, masks and normals at silhouettes would differ between a GPU and a CPU machine (and MSAA
    blends the normal pass with the background). With ``GL_MULTISAMPLE`` off, every sample takes the
    pixel-centre value, so EGL renders exactly what OSMesa renders; antialiasing is ``supersample``'s
    job. (Patches pyrender's module-level ``glEnable``; unflat is pyrender's only user here.)
    """
    import pyrender.renderer as pyrender_renderer  # noqa: PLC0415
    from OpenGL.GL import GL_MULTISAMPLE  # noqa: PLC0415

    if getattr(pyrender_renderer, "_unflat_single_sample", False):
        return
    enable = pyrender_renderer.glEnable
    disable = pyrender_renderer.glDisable

    def gl_enable(capability: int) -> None:
        if capability == GL_MULTISAMPLE:
            disable(capability)
        else:
            enable(capability)

    pyrender_renderer.glEnable = gl_enable
    pyrender_renderer._unflat_single_sample = True


