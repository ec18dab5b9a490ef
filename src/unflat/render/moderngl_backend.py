"""The off-the-shelf OpenGL renderer, batched: one persistent moderngl context, one pass per batch.

unflat's default off-the-shelf renderer. Same pictures as ``PyrenderRenderer`` (the optional second
implementation): pyrender's metallic-roughness shader for directional lights (metallic 0.2, roughness 0.8
for coloured meshes, the material's factors for textured ones; vertex colours multiply the lit colour;
base-colour textures decoded from sRGB; gamma 1/2.2), the same
camera-attached lights, pixel-centre rasterisation without MSAA, back-face culling, ``supersample``
box filtering, colour quantised to 8 bits. What changes is how a batch is drawn:

* all meshes of the batch go into ONE vertex buffer and ONE index buffer (positions, normals and
  colours prepared on the torch side; ``render_packed`` takes ``PackedMeshes`` straight from batched
  marching cubes, so no Python object per mesh exists);
* every view gets a tile of one atlas framebuffer (a viewport) and its camera through a range of one
  uniform buffer; the atlas is read back once (colour, camera depth, optionally world normals);
* the context lives in one worker thread for the renderer's lifetime (a GL context belongs to one
  thread), so callers on any thread can hand it work and carry on (``render_packed_async``).

Headless: EGL through glcontext (NVIDIA's EGL on GPU machines, Mesa's llvmpipe on CPU machines:
Debian ``libegl1 libegl-mesa0 libgl1-mesa-dri``). ``moderngl_available()`` says whether it works here.
"""

from __future__ import annotations

import functools
import math
import threading
import time
import warnings
import queue
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from unflat.cameras import Cameras
from unflat.geometry.packed_meshes import PackedMeshes, vertex_normals
from unflat.render.base import RenderOutput
from unflat.render.cuda_gl_interop import CudaGLInterop, InteropError
from unflat.render.gl_scene import Lighting, Shading, crease_shaded, load_triton_before_mesa, unmerge_face_colours, voxel_meshes

MAX_ATLAS_SIZE = 8192
"""Largest atlas side in pixels; bigger batches are drawn in several passes."""

_VERTEX_SHADER = """
#version 330 core
layout(std140) uniform Item {
    mat4 proj_view;      // world -> clip
    vec4 view_z;         // camera depth (OpenCV z) = dot(view_z.xyz, p) + view_z.w
    vec4 cam_pos;
    vec4 base_color;     // pyrender's material base colour factor
    vec4 tint;           // colour multiplier when there are no vertex colours
    vec4 material;       // metallic, roughness, 1 = sample base_texture, unused
    vec4 light_dir[MAX_LIGHTS];  // world direction towards each light
} item;
in vec3 in_position;
in vec3 in_normal;
#ifdef VERTEX_COLORS
in vec4 in_color;
#endif
#ifdef TEXTURED
in vec2 in_uv;
out vec2 frag_uv;
#endif
out vec3 frag_position;
out vec3 frag_normal;
out vec4 frag_multiplier;
void main() {
    gl_Position = item.proj_view * vec4(in_position, 1.0);
    frag_position = in_position;
    frag_normal = normalize(in_normal);
#ifdef TEXTURED
    frag_uv = in_uv;
#endif
#ifdef VERTEX_COLORS
    frag_multiplier = in_color;
#else
    frag_multiplier = item.tint;
#endif
}
"""

# pyrender's mesh.frag (metallic-roughness, directional lights, base-colour texture), and flat.frag for UNLIT.
_FRAGMENT_SHADER = """
#version 330 core
layout(std140) uniform Item {
    mat4 proj_view;
    vec4 view_z;
    vec4 cam_pos;
    vec4 base_color;
    vec4 tint;
    vec4 material;
    vec4 light_dir[MAX_LIGHTS];
} item;
#ifdef TEXTURED
uniform sampler2D base_texture;
in vec2 frag_uv;
#endif
uniform vec3 light_radiance[MAX_LIGHTS];
uniform vec3 ambient_light;
uniform int n_lights;
in vec3 frag_position;
in vec3 frag_normal;
in vec4 frag_multiplier;
layout(location = 0) out vec4 out_color;
layout(location = 1) out float out_depth;
layout(location = 2) out vec4 out_normal;
const float PI = 3.141592653589793;
const float min_roughness = 0.04;

// pyrender's srgb_to_linear: base-colour textures are stored in sRGB (glTF).
vec4 srgb_to_linear(vec4 srgb) {
    vec3 b_less = step(vec3(0.04045), srgb.xyz);
    vec3 lin_out = mix(srgb.xyz / vec3(12.92), pow((srgb.xyz + vec3(0.055)) / vec3(1.055), vec3(2.4)), b_less);
    return vec4(lin_out, srgb.w);
}

vec3 brdf(vec3 n, vec3 v, vec3 l, vec3 f0, vec3 c_diff, vec3 radiance, float roughness) {
    vec3 h = normalize(l + v);
    float nl = clamp(dot(n, l), 0.001, 1.0);
    float nv = clamp(abs(dot(n, v)), 0.001, 1.0);
    float nh = clamp(dot(n, h), 0.0, 1.0);
    float vh = clamp(dot(v, h), 0.0, 1.0);
    vec3 F = f0 + (1.0 - f0) * pow(clamp(1.0 - vh, 0.0, 1.0), 5.0);
    float r = roughness + 1.0;
    float k = r * r / 8.0;
    float G = (nv / (nv * (1.0 - k) + k)) * (nl / (nl * (1.0 - k) + k));
    float a = roughness * roughness;
    float a2 = a * a;
    float denom = nh * nh * (a2 - 1.0) + 1.0;
    float D = a2 / (PI * denom * denom);
    vec3 diffuse = (1.0 - F) * c_diff / PI;
    vec3 specular = F * G * D / (4.0 * nl * nv + 0.001);
    return nl * radiance * (diffuse + specular);
}

void main() {
    vec3 n = normalize(frag_normal);
    vec4 base = item.base_color;
    float metallic = clamp(item.material.x, 0.0, 1.0);
    float roughness = clamp(item.material.y, min_roughness, 1.0);
#ifdef TEXTURED
    if (item.material.z > 0.5) {
#ifdef UNLIT
        base *= texture(base_texture, frag_uv);
#else
        base *= srgb_to_linear(texture(base_texture, frag_uv));
#endif
    }
#endif
#ifdef UNLIT
    vec4 color = clamp(base * frag_multiplier, 0.0, 1.0);
#else
    vec3 c_diff = base.rgb * (1.0 - min_roughness) * (1.0 - metallic);
    vec3 f0 = mix(vec3(min_roughness), base.rgb, metallic);
    vec3 v = normalize(item.cam_pos.xyz - frag_position);
    vec4 color = vec4(0.0, 0.0, 0.0, 1.0);
    for (int i = 0; i < n_lights; i++) {
        color.rgb += brdf(n, v, normalize(item.light_dir[i].xyz), f0, c_diff, light_radiance[i], roughness);
    }
    color.rgb += base.rgb * ambient_light;
    color *= frag_multiplier;
    color = clamp(vec4(pow(color.rgb, vec3(1.0 / 2.2)), 1.0), 0.0, 1.0);
#endif
    out_color = vec4(color.rgb, 1.0);
    out_depth = dot(item.view_z.xyz, frag_position) + item.view_z.w;
    out_normal = vec4(n, 1.0);
}
"""


@functools.lru_cache(maxsize=1)
def moderngl_available() -> str | None:
    """None when a headless moderngl (EGL) context can be made here, else the reason it cannot."""
    load_triton_before_mesa()
    try:
        import moderngl  # noqa: PLC0415

        ctx = moderngl.create_standalone_context(backend="egl")
        ctx.release()
        return None
    except Exception as exc:  # noqa: BLE001  (missing wheel, libEGL, Mesa/NVIDIA vendor library, driver)
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@dataclass
class DrawTimings:
    """Where the last batch's time went, in milliseconds (wall clock). ``prepare``: caller's thread
    (normals, copies to host memory unless CUDA-GL interop is used); the rest on the GL thread: ``upload`` (vertex/index/uniform buffers),
    ``draw`` (the draw calls, finished with glFinish), ``readback`` (framebuffer -> host), ``finish``
    (tiles -> RenderOutput)."""

    prepare_ms: float = 0.0
    upload_ms: float = 0.0
    draw_ms: float = 0.0
    readback_ms: float = 0.0
    finish_ms: float = 0.0
    faces: int = 0
    views: int = 0
    path: str = "host copies"
    """How the meshes reached GL: "host copies" or "cuda-gl interop"."""


@dataclass
class _Batch:
    """Everything the GL thread needs for one draw (vertex data on the host, or on the GPU for interop)."""

    positions: np.ndarray | Tensor  # [V,3] float32 (a CUDA tensor when it goes through CUDA-GL interop)
    normals: np.ndarray | Tensor  # [V,3] float32 (likewise)
    colors: np.ndarray | None  # [V,4] uint8 or None (then every item's tint)
    indices: np.ndarray | Tensor  # [F*3] int32, global (likewise)
    first_index: np.ndarray  # [M] where mesh m's indices start (in indices)
    index_count: np.ndarray  # [M]
    mesh_of_item: np.ndarray  # [B] which mesh each view shows
    items: np.ndarray  # [B, item_floats] float32: the Item uniform block per view
    with_normals: bool
    uvs: np.ndarray | None = None  # [V,2] float32 texture coordinates (glTF: v up) when any mesh is textured
    textures: list[np.ndarray | None] | None = None  # [M] RGBA uint8 [H,W,4] base-colour image per mesh, or None
    double_sided: np.ndarray | None = None  # [M] bool: draw back faces too (glTF doubleSided)
    timings: DrawTimings | None = None  # filled in as the batch is drawn
    ready: "torch.cuda.Event | None" = None  # recorded after the CUDA tensors above were computed


class ModernGLRenderer:
    """Batched headless OpenGL renderer with ``PyrenderRenderer``'s arguments, pictures and outputs.

    Args: as ``PyrenderRenderer`` (resolution, lighting, background, shading, crease_angle_deg,
    supersample, znear, zfar, compute_normals, unlit). Meshes carry vertex colours, face colours, a
    base-colour texture with UVs (trimesh ``TextureVisuals`` with a PBR or simple material), or none.
    """

    platform = "egl"
    backend = "moderngl"

    def __init__(
        self,
        resolution: int,
        lighting: Lighting | None = None,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
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
        reason = moderngl_available()
        if reason is not None:
            from unflat.errors import UserError  # noqa: PLC0415

            raise UserError(f"moderngl renderer unavailable ({reason}); install moderngl and EGL "
                            "(Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) "
                            "or install the pyrender extra (bash scripts/setup.sh pyrender)")
        self.resolution, self.supersample = resolution, supersample
        self.lighting = lighting if lighting is not None else Lighting.two_beams()
        self.background = tuple(float(c) for c in background)
        self.shading: Shading = shading
        self.crease_angle_deg = crease_angle_deg
        self.znear, self.zfar = znear, zfar
        self.compute_normals, self.unlit = compute_normals, unlit
        self._tile = resolution * supersample
        self._lights = max(1, len(self.lighting.lights))
        self._item_floats = 16 + 5 * 4 + 4 * self._lights
        self._interop_usable = True  # False after interop failed once here (then host copies)
        self._executor: _GLThread | None = _GLThread("unflat-moderngl")
        self._gl: _GLState | None = None  # created and used only on the executor's thread
        self._lock = threading.Lock()
        self.use_cuda_interop = True
        """Hand CUDA meshes to GL through CUDA-GL interop when it works here (see ``cuda_gl_interop``);
        False: always through host memory."""
        self.gl_renderer = "not started"
        """GL_RENDERER of the context once the first batch is drawn (which GPU, or llvmpipe)."""
        self.last_timings = DrawTimings()
        """Timings of the most recently finished batch (see ``DrawTimings``)."""

    # ---- public API -------------------------------------------------------------------------
    def render(self, meshes: "Sequence[object] | object", cameras: Cameras,
               compute_normals: bool | None = None) -> RenderOutput:
        """As ``PyrenderRenderer.render``: one trimesh for all cameras or one per camera -> RenderOutput (CPU)."""
        b = len(cameras)
        mesh_list = list(meshes) if isinstance(meshes, (list, tuple)) else [meshes]
        if len(mesh_list) not in (1, b) or (isinstance(meshes, (list, tuple)) and len(mesh_list) != b):
            raise ValueError(f"got {len(mesh_list)} meshes for {b} cameras; pass one mesh or one per camera")
        arrays = [self._mesh_arrays(m) for m in mesh_list]
        positions = np.concatenate([a.positions for a in arrays]).reshape(-1, 3).astype(np.float32)
        normals = np.concatenate([a.normals for a in arrays]).reshape(-1, 3).astype(np.float32)
        colors = None
        if any(a.colors is not None for a in arrays):
            colors = np.concatenate([a.colors if a.colors is not None else np.full((len(a.positions), 4), 255, np.uint8)
                                     for a in arrays])
        uvs = None
        if any(a.texture is not None for a in arrays):
            uvs = np.concatenate([a.uvs if a.texture is not None else np.zeros((len(a.positions), 2))
                                  for a in arrays]).astype(np.float32)
        counts = np.array([len(a.positions) for a in arrays], np.int64)
        offsets = np.cumsum(counts) - counts
        indices = [a.faces.reshape(-1) + o for a, o in zip(arrays, offsets)]
        index_count = np.array([len(i) for i in indices], np.int64)
        mesh_of_item = np.zeros(b, np.int64) if len(mesh_list) == 1 else np.arange(b)
        base = np.stack([a.base_color for a in arrays]).astype(np.float32)[mesh_of_item]
        material = np.array([[a.metallic, a.roughness, float(a.texture is not None), 0.0] for a in arrays],
                            np.float32)[mesh_of_item]
        batch = _Batch(positions, normals, colors, np.concatenate(indices).astype(np.int32),
                       np.cumsum(index_count) - index_count, index_count, mesh_of_item,
                       self._items(cameras, base, np.ones((b, 3), np.float32), material),
                       self.compute_normals if compute_normals is None else compute_normals,
                       uvs=uvs, textures=[a.texture for a in arrays],
                       double_sided=np.array([a.double_sided for a in arrays]))
        return self._submit(batch).result()

    def render_voxels(self, voxels: Tensor | np.ndarray, cameras: Cameras, threshold: float = 0.5,
                      color: tuple[float, float, float] = (0.7, 0.7, 0.7), bounds: tuple[float, float] = (-1.0, 1.0),
                      compute_normals: bool | None = None) -> RenderOutput:
        """Occupancy grids [B,D,D,D] (one per camera) or [D,D,D] (shared), solid above ``threshold``,
        rendered through marching cubes (see ``gl_scene.voxel_meshes``)."""
        meshes = voxel_meshes(voxels, len(cameras), threshold, color, bounds)
        return self.render(meshes[0] if len(meshes) == 1 else meshes, cameras, compute_normals=compute_normals)

    def render_packed(self, meshes: PackedMeshes, cameras: Cameras, color: tuple[float, float, float] = (0.7, 0.7, 0.7),
                      normals: Tensor | None = None, compute_normals: bool = False) -> RenderOutput:
        """One packed mesh per camera (counter-clockwise outward faces), smooth-shaded, one uniform colour
        (RGB in [0,1], like vertex colours in ``render``) -> RenderOutput on the CPU."""
        return self.render_packed_async(meshes, cameras, color, normals, compute_normals).result()

    def render_packed_async(self, meshes: PackedMeshes, cameras: Cameras,
                            color: tuple[float, float, float] = (0.7, 0.7, 0.7), normals: Tensor | None = None,
                            compute_normals: bool = False) -> "Future[RenderOutput]":
        """``render_packed`` that returns at once: the drawing runs on the renderer's GL thread.
        CPU meshes are copied before this returns; CUDA meshes are read on the GPU by the GL thread (CUDA-GL
        interop), so do not modify them in place until the future is done (rebinding the names is fine)."""
        if len(meshes) != len(cameras):
            raise ValueError(f"got {len(meshes)} meshes for {len(cameras)} cameras")
        start = time.perf_counter()
        ready = None
        with torch.no_grad():
            normals = vertex_normals(meshes.vertices, meshes.faces) if normals is None else normals
            positions = meshes.vertices.float().contiguous()
            normal_array = normals.float().contiguous()
            indices = meshes.faces.to(torch.int32).reshape(-1).contiguous()
            index_count = (meshes.face_counts * 3).cpu().numpy()
            if self.use_cuda_interop and positions.is_cuda and self._interop_usable:
                ready = torch.cuda.Event()  # the GL thread waits for it, then copies on the GPU
                ready.record(torch.cuda.current_stream(positions.device))
            else:
                positions, normal_array, indices = (t.cpu().numpy() for t in (positions, normal_array, indices))
        b = len(cameras)
        # Quantised like vertex colours so both backends multiply by the same value.
        rgb = np.round(np.asarray(color, np.float32) * 255) / 255
        base = np.ones((b, 4), np.float32)
        material = np.tile(np.array([[_COLOURED_METALLIC, _COLOURED_ROUGHNESS, 0.0, 0.0]], np.float32), (b, 1))
        batch = _Batch(positions, normal_array, None, indices, np.cumsum(index_count) - index_count, index_count,
                       np.arange(b), self._items(cameras, base, np.tile(rgb, (b, 1)), material), compute_normals)
        batch.timings = DrawTimings(prepare_ms=1000 * (time.perf_counter() - start))
        batch.ready = ready
        return self._submit(batch)

    def close(self, wait: bool = True) -> None:
        """Free the GL context and stop the renderer's thread (``wait``: until that is done)."""
        executor, self._executor = getattr(self, "_executor", None), None
        if executor is None:
            return
        done = executor.submit(self._release)
        executor.stop()
        if wait:
            done.result()

    def __del__(self) -> None:
        # Never block here: garbage collection may run while this thread holds the import lock
        # that the GL thread would need, or inside another renderer's submit (close takes no lock).
        try:
            self.close(wait=False)
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass

    # ---- preparation (caller's thread) ------------------------------------------------------
    def _mesh_arrays(self, mesh: object) -> "_MeshArrays":
        """A trimesh as vertex arrays shaded like pyrender (see ``_MeshArrays``)."""
        import trimesh  # noqa: PLC0415

        if not isinstance(mesh, trimesh.Trimesh):
            raise TypeError(f"expected trimesh.Trimesh, got {type(mesh).__name__}")
        if len(mesh.faces) == 0:
            return _MeshArrays(np.zeros((0, 3)), np.zeros((0, 3)), None, np.zeros((0, 3), np.int64))
        kind = mesh.visual.kind if mesh.visual.defined else None
        surface = _material_of(mesh) if kind == "texture" else None
        if self.shading == "flat":
            faces = np.asarray(mesh.faces)
            positions = np.asarray(mesh.vertices)[faces].reshape(-1, 3)
            normals = np.repeat(np.asarray(mesh.face_normals), 3, axis=0)
            colors = uvs = None
            if kind == "vertex":
                colors = np.asarray(mesh.visual.vertex_colors)[faces].reshape(-1, 4)
            elif kind == "face":
                colors = np.repeat(np.asarray(mesh.visual.face_colors), 3, axis=0)
            elif surface is not None and surface.texture is not None:
                uvs = np.asarray(mesh.visual.uv)[faces].reshape(-1, 2)
            return _MeshArrays(positions, normals, colors, np.arange(len(positions)).reshape(-1, 3), uvs, surface)
        shaded = mesh if self.shading == "smooth" else crease_shaded(mesh, self.crease_angle_deg)
        if kind == "face":
            shaded = unmerge_face_colours(shaded)
        colors = uvs = None
        if kind in ("vertex", "face"):
            colors = np.asarray(shaded.visual.vertex_colors)
        elif surface is not None and surface.texture is not None:
            uvs = np.asarray(shaded.visual.uv)
        return _MeshArrays(np.asarray(shaded.vertices), np.asarray(shaded.vertex_normals), colors,
                           np.asarray(shaded.faces), uvs, surface)

    def _items(self, cameras: Cameras, base: np.ndarray, tint: np.ndarray, material: np.ndarray) -> np.ndarray:
        """The Item uniform block of every view: [B, item_floats] float32 (std140 layout).

        base: [B,4] base colour factor; tint: [B,3] multiplier without vertex colours; material: [B,4]
        (metallic, roughness, textured 0/1, 0)."""
        pose_gl = cameras.opengl_cam2world().detach().double().cpu().numpy()
        world2cam = cameras.world2cam().detach().double().cpu().numpy()
        intr = cameras.intrinsics.detach().double().cpu().numpy()
        b = len(cameras)
        n, f = self.znear, self.zfar
        proj = np.zeros((b, 4, 4))
        # pyrender's IntrinsicsCamera.get_projection_matrix, cx/cy in pixels of a size x size image
        proj[:, 0, 0] = 2.0 * intr[:, 0]
        proj[:, 1, 1] = 2.0 * intr[:, 1]
        proj[:, 0, 2] = 1.0 - 2.0 * intr[:, 2]
        proj[:, 1, 2] = 2.0 * intr[:, 3] - 1.0
        proj[:, 3, 2] = -1.0
        proj[:, 2, 2] = (f + n) / (n - f)
        proj[:, 2, 3] = 2 * f * n / (n - f)
        view_gl = np.linalg.inv(pose_gl)
        proj_view = proj @ view_gl
        items = np.zeros((b, self._item_floats), np.float32)
        items[:, :16] = proj_view.transpose(0, 2, 1).reshape(b, 16)  # std140 matrices are column-major
        items[:, 16:20] = world2cam[:, 2, :4]
        items[:, 20:23] = pose_gl[:, :3, 3]
        items[:, 24:28] = base
        items[:, 28:31], items[:, 31] = tint, 1.0
        items[:, 32:36] = material
        for i, light in enumerate(self.lighting.lights):
            items[:, 36 + 4 * i : 39 + 4 * i] = pose_gl[:, :3, :3] @ light.direction_camera_gl()
        return items

    # ---- GL thread --------------------------------------------------------------------------
    def _submit(self, batch: _Batch) -> "Future[RenderOutput]":
        if self._executor is None:
            raise RuntimeError("renderer is closed")
        return self._executor.submit(self._draw, batch)

    def _state(self) -> "_GLState":
        if self._gl is None:
            self._gl = _GLState(self)
        return self._gl

    def _release(self) -> None:
        if self._gl is not None:
            self._gl.release()
            self._gl = None

    def _draw(self, batch: _Batch) -> RenderOutput:
        gl = self._state()
        b, s = len(batch.mesh_of_item), self._tile
        timings = batch.timings if batch.timings is not None else DrawTimings()
        timings.views, timings.faces = b, int(batch.index_count[batch.mesh_of_item].sum()) // 3
        per_side = max(1, MAX_ATLAS_SIZE // s)
        chunk = per_side * per_side
        vao = gl.geometry(batch, timings)  # the whole batch's meshes, uploaded once for every atlas chunk
        try:
            parts = [gl.draw(batch, vao, start, min(b, start + chunk), timings) for start in range(0, b, chunk)]
        finally:
            vao.release()
        start = time.perf_counter()
        colour = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, s, s, 4), np.uint8)
        depth = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, s, s), np.float32)
        normals = np.concatenate([p[2] for p in parts]) if parts and batch.with_normals else None
        out = self._finish(colour, depth, normals)
        timings.finish_ms += 1000 * (time.perf_counter() - start)
        self.last_timings = timings
        return out

    def _finish(self, colour: np.ndarray, depth: np.ndarray, normals: np.ndarray | None) -> RenderOutput:
        """Tiles [B,S,S,*] (top row first) -> RenderOutput at ``resolution`` (supersampling box filter)."""
        k = self.supersample
        hit = torch.from_numpy(depth > 0)[:, None].float()  # [B,1,S,S]
        background = torch.tensor([round(c * 255) / 255 for c in self.background]).view(1, 3, 1, 1)
        rgb = torch.from_numpy(colour[..., :3]).permute(0, 3, 1, 2).float() / 255.0
        rgb = rgb * hit + background * (1 - hit)
        z = torch.from_numpy(depth)[:, None] * hit
        out_normals = None
        if normals is not None:
            out_normals = torch.from_numpy(normals[..., :3]).permute(0, 3, 1, 2) * hit
        if k > 1:
            rgb, coverage = F.avg_pool2d(rgb, k), F.avg_pool2d(hit, k)
            safe = coverage.clamp_min(1e-12)
            z = torch.where(coverage > 0, F.avg_pool2d(z, k) / safe, 0.0)
            if out_normals is not None:
                out_normals = F.avg_pool2d(out_normals, k) / safe
            hit = coverage
        if out_normals is not None:
            out_normals = F.normalize(out_normals, dim=1, eps=1e-6) * (hit > 0)
        return RenderOutput(rgb=rgb.contiguous(), mask=hit.contiguous(), depth=z.contiguous(),
                            normals=None if out_normals is None else out_normals.contiguous())


class _GLThread:
    """One daemon thread that runs submitted calls in order (a GL context belongs to one thread).

    Not a ``ThreadPoolExecutor``: its ``submit`` holds a process-wide lock, and a renderer's ``__del__``
    (run by garbage collection at any allocation, e.g. inside another renderer's ``submit``) then
    deadlocked on that lock. Here ``submit`` and ``stop`` only put into a ``SimpleQueue``, which is safe
    to call from ``__del__``; the thread holds no reference to the renderer."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=_serve_gl_calls, args=(self._queue,), name=name, daemon=True).start()

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args))
        return future

    def stop(self) -> None:
        """The thread ends after the calls already submitted."""
        self._queue.put(None)


def _serve_gl_calls(calls: queue.SimpleQueue) -> None:
    while (call := calls.get()) is not None:
        future, fn, args = call
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller through the future)
            future.set_exception(exc)
        del call, future, fn, args  # drop references before waiting for the next call


class _GLState:
    """The context, programs, buffers and framebuffers; lives on the renderer's GL thread."""

    def __init__(self, owner: ModernGLRenderer) -> None:
        import moderngl  # noqa: PLC0415

        self.moderngl = moderngl
        self.owner = owner
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.alignment = int(self.ctx.info.get("GL_UNIFORM_BUFFER_OFFSET_ALIGNMENT", 256) or 256)
        owner.gl_renderer = str(self.ctx.info.get("GL_RENDERER", "unknown"))
        self.programs: dict[tuple[bool, bool, bool], object] = {}
        self.buffers: dict[str, object] = {}
        self.framebuffers: dict[tuple, object] = {}
        self.interop: CudaGLInterop | None = None  # made on the first batch of CUDA tensors

    def program(self, vertex_colors: bool, textured: bool = False) -> object:
        key = (vertex_colors, textured, self.owner.unlit)
        if key not in self.programs:
            defines = f"#define MAX_LIGHTS {self.owner._lights}\n"
            defines += "#define VERTEX_COLORS\n" if vertex_colors else ""
            defines += "#define TEXTURED\n" if textured else ""
            defines += "#define UNLIT\n" if self.owner.unlit else ""

            def with_defines(source: str) -> str:
                head, rest = source.strip().split("\n", 1)
                return f"{head}\n{defines}{rest}"

            prog = self.ctx.program(vertex_shader=with_defines(_VERTEX_SHADER), fragment_shader=with_defines(_FRAGMENT_SHADER))
            lighting = self.owner.lighting
            if not self.owner.unlit:
                radiance = np.zeros((self.owner._lights, 3), np.float32)
                for i, light in enumerate(lighting.lights):
                    radiance[i] = np.asarray(light.color) * light.intensity
                prog["light_radiance"].write(radiance.tobytes())
                prog["ambient_light"].value = tuple(float(a) for a in lighting.ambient)
                prog["n_lights"].value = len(lighting.lights)
            prog["Item"].binding = 0
            if textured:
                prog["base_texture"].value = 0  # texture unit 0
            self.programs[key] = prog
        return self.programs[key]

    def reserve(self, name: str, nbytes: int) -> object:
        """The persistent buffer ``name`` with room for ``nbytes`` (grown, never shrunk)."""
        buf = self.buffers.get(name)
        if buf is None or buf.size < max(nbytes, 4):
            if buf is not None:
                if self.interop is not None:
                    self.interop.forget(buf.glo)
                buf.release()
            buf = self.ctx.buffer(reserve=max(nbytes, 4) * 5 // 4 + 64)
            self.buffers[name] = buf
        return buf

    def buffer(self, name: str, data: np.ndarray) -> object:
        """A persistent buffer holding ``data`` (host memory)."""
        raw = np.ascontiguousarray(data)  # written through the buffer protocol: no extra copy
        buf = self.reserve(name, raw.nbytes)
        if raw.nbytes:
            buf.write(raw)
        return buf

    def upload(self, name: str, data: "np.ndarray | Tensor", dtype: type, timings: DrawTimings) -> object:
        """A persistent buffer holding ``data``: a CUDA tensor goes GPU -> GL buffer through interop
        (once that works here), anything else through host memory."""
        if isinstance(data, Tensor):
            if self.owner._interop_usable:
                try:
                    if self.interop is None:
                        self.interop = CudaGLInterop(data.device.index or 0)
                    buf = self.reserve(name, data.numel() * data.element_size())
                    self.interop.copy(buf.glo, data)
                    timings.path = "cuda-gl interop"
                    return buf
                except InteropError as exc:
                    self.owner._interop_usable = False
                    warnings.warn(f"CUDA-GL interop unavailable, meshes go through host memory: {exc}", stacklevel=2)
            data = data.cpu().numpy()
        return self.buffer(name, data.astype(dtype, copy=False))

    def framebuffer(self, cols: int, rows: int, with_normals: bool) -> object:
        key = (cols, rows, with_normals)
        if key not in self.framebuffers:
            size = (cols * self.owner._tile, rows * self.owner._tile)
            attachments = [self.ctx.renderbuffer(size, 4, dtype="f1"), self.ctx.renderbuffer(size, 1, dtype="f4")]
            if with_normals:
                attachments.append(self.ctx.renderbuffer(size, 4, dtype="f4"))
            self.framebuffers[key] = self.ctx.framebuffer(attachments, self.ctx.depth_renderbuffer(size))
        return self.framebuffers[key]

    def geometry(self, batch: _Batch, timings: DrawTimings) -> object:
        """The batch's vertex and index buffers in a vertex array (the caller releases it); adds the upload
        time to ``timings``."""
        t0 = time.perf_counter()
        vertex_colors = batch.colors is not None
        if batch.ready is not None:
            batch.ready.synchronize()  # the caller's marching cubes / normals have finished on the GPU
        content = [(self.upload("position", batch.positions, np.float32, timings), "3f", "in_position"),
                   (self.upload("normal", batch.normals, np.float32, timings), "3f", "in_normal")]
        if vertex_colors:
            content.append((self.buffer("color", batch.colors.astype(np.uint8, copy=False)), "4f1", "in_color"))
        textured = batch.uvs is not None
        if textured:
            content.append((self.buffer("uv", batch.uvs.astype(np.float32, copy=False)), "2f", "in_uv"))
        index = self.upload("index", batch.indices, np.int32, timings)
        vao = self.ctx.vertex_array(self.program(vertex_colors, textured), content, index_buffer=index,
                                    index_element_size=4)
        timings.upload_ms += 1000 * (time.perf_counter() - t0)
        return vao

    def draw(self, batch: _Batch, vao: object, start: int, stop: int,
             timings: DrawTimings) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Views start..stop-1 into one atlas -> (colour [n,S,S,4] uint8, depth [n,S,S], normals [n,S,S,4] or None).
        Adds its uniform upload / draw / readback times to ``timings``."""
        mgl, ctx, s = self.moderngl, self.ctx, self.owner._tile
        t0 = time.perf_counter()
        n = stop - start
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        stride = -(-4 * batch.items.shape[1] // self.alignment) * self.alignment
        block = np.zeros((n, stride // 4), np.float32)
        block[:, : batch.items.shape[1]] = batch.items[start:stop]
        ubo = self.buffer("items", block)
        ctx.finish()  # buffer writes may be queued: count them as upload, not draw
        t1 = time.perf_counter()
        fbo = self.framebuffer(cols, rows, batch.with_normals)
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(mgl.DEPTH_TEST | mgl.CULL_FACE)
        ctx.disable(mgl.BLEND)
        ctx.front_face, ctx.cull_face = "ccw", "back"
        height = rows * s
        textures: dict[int, object] = {}
        try:
            for slot, item in enumerate(range(start, stop)):
                mesh = batch.mesh_of_item[item]
                count = int(batch.index_count[mesh])
                if count == 0:
                    continue
                r, c = divmod(slot, cols)
                fbo.viewport = (c * s, height - (r + 1) * s, s, s)
                ubo.bind_to_uniform_block(0, offset=slot * stride, size=4 * batch.items.shape[1])
                if batch.textures is not None and batch.textures[mesh] is not None:
                    if mesh not in textures:
                        textures[mesh] = self.texture(batch.textures[mesh])
                    textures[mesh].use(0)
                if batch.double_sided is not None and batch.double_sided[mesh]:
                    ctx.disable(mgl.CULL_FACE)  # like pyrender for doubleSided materials
                else:
                    ctx.enable(mgl.CULL_FACE)
                vao.render(mgl.TRIANGLES, vertices=count, first=int(batch.first_index[mesh]))
        finally:
            for texture in textures.values():
                texture.release()
        fbo.viewport = (0, 0, cols * s, height)
        ctx.finish()
        t2 = time.perf_counter()
        colour = np.frombuffer(fbo.read(components=4, attachment=0, dtype="f1"), np.uint8).reshape(height, cols * s, 4)
        depth = np.frombuffer(fbo.read(components=1, attachment=1, dtype="f4"), np.float32).reshape(height, cols * s)
        normals = None
        if batch.with_normals:
            normals = np.frombuffer(fbo.read(components=4, attachment=2, dtype="f4"), np.float32).reshape(height, cols * s, 4)
        t3 = time.perf_counter()
        timings.upload_ms += 1000 * (t1 - t0)
        timings.draw_ms += 1000 * (t2 - t1)
        timings.readback_ms += 1000 * (t3 - t2)
        return _tiles(colour, rows, cols, s, n), _tiles(depth, rows, cols, s, n), None if normals is None else _tiles(normals, rows, cols, s, n)

    def texture(self, image: np.ndarray) -> object:
        """A mipmapped, repeating RGBA texture of ``image`` [H,W,4] uint8 (row 0 = top, i.e. v = 1),
        sampled like pyrender's default sampler (trilinear minification, linear magnification)."""
        mgl = self.moderngl
        # GL's first row is t = 0 (the bottom): flip, as pyrender does.
        texture = self.ctx.texture((image.shape[1], image.shape[0]), 4, np.ascontiguousarray(image[::-1]))
        texture.build_mipmaps()
        texture.filter = (mgl.LINEAR_MIPMAP_LINEAR, mgl.LINEAR)
        texture.repeat_x = texture.repeat_y = True
        return texture

    def release(self) -> None:
        if self.interop is not None:
            self.interop.close()
        for fbo in self.framebuffers.values():
            fbo.release()
        for buf in self.buffers.values():
            buf.release()
        self.ctx.release()


def _tiles(atlas: np.ndarray, rows: int, cols: int, size: int, n: int) -> np.ndarray:
    """GL atlas [rows*S, cols*S, ...] (bottom row first) -> tiles [n, S, S, ...] top row first, in view order."""
    top_down = atlas[::-1]
    tail = atlas.shape[2:]
    tiles = top_down.reshape(rows, size, cols, size, *tail).swapaxes(1, 2).reshape(rows * cols, size, size, *tail)
    return np.ascontiguousarray(tiles[:n])


_COLOURED_METALLIC, _COLOURED_ROUGHNESS = 0.2, 0.8
"""pyrender's material for meshes with vertex/face colours or none."""


@dataclass
class _Surface:
    """A textured mesh's material as pyrender reads it from trimesh (glTF defaults where unset)."""

    base_color: np.ndarray  # [4] float factor
    texture: np.ndarray | None  # [H,W,4] uint8 base-colour image, or None
    metallic: float
    roughness: float
    double_sided: bool


@dataclass
class _MeshArrays:
    """One mesh ready for the vertex buffers: positions [N,3], normals [N,3], colours [N,4] uint8 or None,
    faces [F,3], UVs [N,2] or None (with ``surface``'s texture), and the material."""

    positions: np.ndarray
    normals: np.ndarray
    colors: np.ndarray | None
    faces: np.ndarray
    uvs: np.ndarray | None = None
    surface: _Surface | None = None

    @property
    def texture(self) -> np.ndarray | None:
        return self.surface.texture if self.surface is not None and self.uvs is not None else None

    @property
    def base_color(self) -> np.ndarray:
        if self.surface is not None:
            return self.surface.base_color
        # Meshes without colours render like pyrender's default material (grey 0.3, no multiplier).
        return np.array([1.0, 1.0, 1.0, 1.0] if self.colors is not None else [0.3, 0.3, 0.3, 1.0], np.float32)

    @property
    def metallic(self) -> float:
        return self.surface.metallic if self.surface is not None else _COLOURED_METALLIC

    @property
    def roughness(self) -> float:
        return self.surface.roughness if self.surface is not None else _COLOURED_ROUGHNESS

    @property
    def double_sided(self) -> bool:
        return self.surface.double_sided if self.surface is not None else False


def _colour_factor(value: object) -> np.ndarray:
    """A glTF/trimesh colour (uint8 0-255 or float 0-1, RGB or RGBA, or None) -> float RGBA [4]."""
    if value is None:
        return np.ones(4, np.float32)
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if np.issubdtype(np.asarray(value).dtype, np.integer) or array.max() > 1.0:
        array = array / 255.0
    if len(array) == 3:
        array = np.append(array, 1.0)
    return array[:4].astype(np.float32)


def _rgba(image: object) -> np.ndarray | None:
    """A PIL image or array -> RGBA uint8 [H,W,4], or None."""
    if image is None:
        return None
    from PIL import Image  # noqa: PLC0415

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGBA"))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array * 255 if array.max() <= 1.0 else array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.shape[2] == 3:
        array = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(array)


def _material_of(mesh: object) -> _Surface:
    """pyrender's reading of a trimesh ``TextureVisuals`` material (pyrender/mesh.py ``_get_trimesh_props``)."""
    import trimesh  # noqa: PLC0415

    material = mesh.visual.material
    if isinstance(material, trimesh.visual.material.PBRMaterial):
        return _Surface(_colour_factor(material.baseColorFactor), _rgba(material.baseColorTexture),
                        1.0 if material.metallicFactor is None else float(material.metallicFactor),
                        1.0 if material.roughnessFactor is None else float(material.roughnessFactor),
                        bool(material.doubleSided))
    if isinstance(material, trimesh.visual.material.SimpleMaterial):
        glossiness = material.kwargs.get("Ns", 1.0)
        glossiness = float(glossiness[0] if isinstance(glossiness, (list, tuple, np.ndarray)) else glossiness)
        return _Surface(_colour_factor(material.diffuse), _rgba(material.image), 1.0,
                        (2.0 / (glossiness + 2.0)) ** 0.25, False)
    return _Surface(np.ones(4, np.float32), None, 1.0, 1.0, False)
