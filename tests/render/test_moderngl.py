"""The batched moderngl renderer against pyrender (same meshes, same cameras; when the optional extra is
installed) and analytic projections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from unflat.cameras import Cameras, fov_to_focal
from unflat.data.synth import make_shape
from unflat.geometry.packed_meshes import PackedMeshes
from unflat.render import moderngl_backend
from unflat.render.moderngl_backend import ModernGLRenderer, moderngl_available
from PIL import Image

from unflat.render.gl_backends import pyrender_installed

pytestmark = pytest.mark.skipif(moderngl_available() is not None, reason=f"no headless moderngl: {moderngl_available()}")

RES, FOV = 48, 40.0


def _cameras(n: int, seed: int = 0) -> Cameras:
    return Cameras.sample_orbit(n, torch.Generator().manual_seed(seed), elevation_range=(-30, 60), radius=3.0, fov_deg=FOV)


def _grey(mesh: trimesh.Trimesh, rgb=(180, 180, 180)) -> trimesh.Trimesh:
    mesh.visual.vertex_colors = np.tile(np.array([*rgb, 255], np.uint8), (len(mesh.vertices), 1))
    return mesh


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a > 0.5) & (b > 0.5)).sum() / ((a > 0.5) | (b > 0.5)).sum())


needs_pyrender = pytest.mark.skipif(not pyrender_installed(), reason="optional extra unflat[pyrender] not installed")


def _textured(mesh: trimesh.Trimesh, material: str) -> trimesh.Trimesh:
    """``mesh`` with spherical UVs and a colourful texture, as a glTF PBR or an OBJ-style simple material."""
    direction = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    uv = np.stack([0.5 + np.arctan2(direction[:, 0], direction[:, 2]) / (2 * np.pi), 0.5 + np.arcsin(direction[:, 1]) / np.pi], 1)
    yy, xx = np.mgrid[0:64, 0:64]
    image = np.stack([xx * 4, yy * 4, ((xx // 8 + yy // 8) % 2) * 255], -1).astype(np.uint8)
    if material == "pbr":
        mat = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(image), metallicFactor=0.0,
                                                  roughnessFactor=1.0, baseColorFactor=(255, 230, 200, 255))
    else:
        mat = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(image), diffuse=(255, 255, 255, 255))
    return trimesh.Trimesh(mesh.vertices, mesh.faces, visual=trimesh.visual.TextureVisuals(uv=uv, material=mat), process=False)


@needs_pyrender
@pytest.mark.parametrize("shading", ["auto", "smooth", "flat"])
def test_same_pictures_as_pyrender(shading: str) -> None:
    from unflat.render.pyrender_backend import PyrenderRenderer

    meshes = [make_shape("chair", 0).mesh, make_shape("car", 1).mesh, _grey(trimesh.creation.icosphere(3, radius=0.7)),
              trimesh.creation.box(extents=(0.8, 0.5, 0.6)),  # the box has no colours: pyrender's grey material
              _textured(trimesh.creation.icosphere(3, radius=0.8), "pbr"),
              _textured(trimesh.creation.icosphere(2, radius=0.6), "simple")]
    cams = _cameras(len(meshes))
    ours = ModernGLRenderer(RES, shading=shading, supersample=2).render(meshes, cams)
    ref = PyrenderRenderer(RES, shading=shading, supersample=2).render(meshes, cams)
    for i in range(len(meshes)):
        assert _iou(ours.mask[i], ref.mask[i]) > 0.98
    difference = (ours.rgb - ref.rgb).abs()
    assert difference.mean() < 1 / 255 and difference[:4].max() < 0.1
    # Textured: the same texels; a few pixels at the UV seam may pick another mipmap level.
    assert (difference[4:] > 0.05).float().mean() < 0.005
    both = (ours.mask == 1) & (ref.mask == 1)
    assert (ours.depth - ref.depth)[both].abs().max() < 1e-3
    cos = (ours.normals * ref.normals).sum(1, keepdim=True)[both]
    assert cos.mean() > 0.999


def test_cube_silhouette_depth_and_orientation_match_the_projection() -> None:
    d = 3.0
    cams = Cameras.from_orbit(torch.zeros(1), torch.zeros(1), d, FOV)
    out = ModernGLRenderer(RES).render(_grey(trimesh.creation.box()), cams)
    side = float(fov_to_focal(FOV)) * RES / (d - 0.5)  # the front face z=0.5 seen from distance d - 0.5
    centres = np.arange(RES) + 0.5
    n_side = int((np.abs(centres - RES / 2) < side / 2).sum())
    assert abs(out.mask.sum().item() - n_side**2) <= n_side
    hit = out.mask[0, 0] > 0.5
    assert torch.allclose(out.depth[0, 0][hit], torch.full_like(out.depth[0, 0][hit], d - 0.5), atol=1e-4)
    assert (out.depth[0, 0][~hit] == 0).all() and torch.allclose(out.rgb[0, :, ~hit], torch.ones(3, 1))
    assert torch.allclose(out.normals[0, :, hit].mean(1), torch.tensor([0.0, 0.0, 1.0]), atol=1e-3)
    # +X on the right, +Y up (OpenCV image rows grow downwards)
    ball = _grey(trimesh.creation.icosphere(2, radius=0.1).apply_translation((0.6, 0.5, 0)))
    rows, cols = torch.nonzero(ModernGLRenderer(RES).render(ball, cams).mask[0, 0] > 0.5, as_tuple=True)
    assert cols.float().mean() > RES / 2 + 5 and rows.float().mean() < RES / 2 - 5


def test_packed_meshes_equal_the_trimesh_path_and_atlas_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    meshes = [_grey(trimesh.creation.icosphere(2, radius=0.3 + 0.1 * i)) for i in range(5)]
    meshes[2] = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64))  # nothing: background
    cams = _cameras(5, seed=1)
    renderer = ModernGLRenderer(RES, shading="smooth", compute_normals=False)
    packed = PackedMeshes.from_trimesh(meshes)
    normals = torch.as_tensor(np.concatenate([np.asarray(m.vertex_normals).reshape(-1, 3) for m in meshes]), dtype=torch.float32)
    a = renderer.render_packed(packed, cams, color=(180 / 255,) * 3, normals=normals)
    b = renderer.render(meshes, cams)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)
    assert a.mask[2].sum() == 0 and (a.mask.sum((1, 2, 3)) > 0).sum() == 4
    # A batch that does not fit one atlas is drawn in several passes with the same result (up to
    # rounding: a tile elsewhere in the atlas is rasterised at other window coordinates).
    monkeypatch.setattr(moderngl_backend, "MAX_ATLAS_SIZE", 2 * RES)
    c = ModernGLRenderer(RES, shading="smooth", compute_normals=False).render_packed(packed, cams, (180 / 255,) * 3, normals)
    assert torch.equal(a.mask, c.mask) and (a.rgb - c.rgb).abs().max() <= 1 / 255 + 1e-6
    assert (a.depth - c.depth).abs().max() < 1e-5


def test_unlit_reproduces_vertex_colours() -> None:
    out = ModernGLRenderer(32, unlit=True, compute_normals=False).render(
        _grey(trimesh.creation.box(), (200, 100, 50)), Cameras.from_orbit(torch.zeros(1), torch.zeros(1), 3.0, FOV))
    assert torch.allclose(out.rgb[0, :, 16, 16] * 255, torch.tensor([200.0, 100.0, 50.0]), atol=1)
