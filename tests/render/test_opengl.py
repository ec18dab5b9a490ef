"""Both OpenGL renderers (moderngl, the default; pyrender, the optional extra) against analytic projections
of cubes, spheres and textured quads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from unflat.cameras import Cameras, fov_to_focal
from unflat.render.gl_backends import GLRenderer, create_renderer, pyrender_installed
from unflat.render.gl_scene import Lighting
from unflat.render.moderngl_backend import moderngl_available

RES = 64
FOV = 40.0

BACKENDS = [
    pytest.param("moderngl", marks=pytest.mark.skipif(moderngl_available() is not None,
                                                      reason=f"no headless EGL: {moderngl_available()}")),
    pytest.param("pyrender", marks=pytest.mark.skipif(not pyrender_installed(), reason="optional extra unflat[pyrender]")),
]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def renderer(backend: str) -> GLRenderer:
    return create_renderer(backend, RES)


def _coloured(mesh: trimesh.Trimesh, rgb=(200, 100, 50)) -> trimesh.Trimesh:
    mesh.visual.vertex_colors = np.tile(np.array([*rgb, 255], np.uint8), (len(mesh.vertices), 1))
    return mesh


def _front(distance: float, n: int = 1) -> Cameras:
    return Cameras.from_orbit(torch.zeros(n), torch.zeros(n), distance, FOV)


def test_cube_silhouette_and_depth_match_projection(renderer: GLRenderer) -> None:
    d = 3.0
    out = renderer.render(_coloured(trimesh.creation.box()), _front(d))
    focal_px = float(fov_to_focal(FOV)) * RES
    side = focal_px * 1.0 / (d - 0.5)  # front face z=0.5 is at distance d-0.5; the back faces are hidden
    assert out.mask.sum().item() == pytest.approx(side**2, rel=0.06)
    # Exactly: the pixels whose centres fall inside the projected square (up to one edge row/column).
    centres = np.arange(RES) + 0.5
    n_side = int((np.abs(centres - RES / 2) < side / 2).sum())
    assert abs(out.mask.sum().item() - n_side**2) <= n_side
    # The square is centred: its bounding box is symmetric about the image centre.
    rows, cols = torch.nonzero(out.mask[0, 0] > 0.5, as_tuple=True)
    assert (rows.min() + rows.max() + 1).item() == pytest.approx(RES, abs=1)
    assert (cols.min() + cols.max() + 1).item() == pytest.approx(RES, abs=1)
    hit = out.mask[0, 0] > 0.5
    assert torch.allclose(out.depth[0, 0][hit], torch.full_like(out.depth[0, 0][hit], d - 0.5), atol=1e-3)
    assert (out.depth[0, 0][~hit] == 0).all()
    assert out.rgb.shape == (1, 3, RES, RES) and 0 <= out.rgb.min() and out.rgb.max() <= 1
    assert torch.allclose(out.rgb[0, :, ~hit], torch.ones(3, 1))  # white background
    # The cube's front face normal is +Z, towards the camera.
    assert torch.allclose(out.normals[0, :, hit].mean(1), torch.tensor([0.0, 0.0, 1.0]), atol=0.02)


def test_sphere_mask_radius_depth_and_normals(renderer: GLRenderer) -> None:
    d, r = 3.0, 0.8
    sphere = _coloured(trimesh.creation.icosphere(subdivisions=4, radius=r))
    cams = Cameras.from_orbit(torch.tensor([30.0]), torch.tensor([20.0]), d, FOV)
    out = renderer.render(sphere, cams)
    focal_px = float(fov_to_focal(FOV)) * RES
    radius_px = focal_px * r / math.sqrt(d * d - r * r)  # tangent cone of the sphere
    assert out.mask.sum().item() == pytest.approx(math.pi * radius_px**2, rel=0.04)
    centre = out.depth[0, 0, RES // 2 - 1 : RES // 2 + 1, RES // 2 - 1 : RES // 2 + 1]
    assert centre.min().item() == pytest.approx(d - r, abs=0.02)
    # Normals: world-space, equal to the direction from the centre to the visible surface point.
    origins, dirs = cams.rays(RES, RES)
    forward = cams.cam2world[0, :3, 2]
    t = out.depth[0, 0].reshape(-1) / (dirs[0] @ forward)
    points = origins[0] + t[:, None] * dirs[0]
    hit = (out.mask[0, 0] > 0.5).reshape(-1)
    expected = torch.nn.functional.normalize(points[hit], dim=-1)
    rendered = out.normals[0].reshape(3, -1).T[hit]
    cos = (expected * rendered).sum(-1)
    assert cos.mean() > 0.995 and cos.min() > 0.95
    eye = cams.cam2world[0, :3, 3]
    facing = ((eye - points[hit]) * rendered).sum(-1)
    # All point towards the camera, up to interpolated normals on the faceted silhouette.
    assert torch.quantile(facing, 0.02) > 0 and facing.min() > -0.25


@pytest.mark.parametrize("point", [(0.6, 0.0, 0.0), (0.0, 0.6, 0.0), (0.3, -0.4, 0.5)])
def test_project_lands_where_the_renderer_draws(renderer: GLRenderer, point) -> None:
    g = torch.Generator().manual_seed(3)
    cams = Cameras.sample_orbit(1, g, elevation_range=(-40, 60), radius=3.0, fov_deg=FOV)
    ball = _coloured(trimesh.creation.icosphere(subdivisions=3, radius=0.08).apply_translation(point))
    out = renderer.render(ball, cams, compute_normals=False)
    mask = out.mask[0, 0]
    ys, xs = torch.meshgrid(torch.arange(RES) + 0.5, torch.arange(RES) + 0.5, indexing="ij")
    centroid = torch.stack([(xs * mask).sum(), (ys * mask).sum()]) / mask.sum()
    uv, z = cams.project(torch.tensor([[point]], dtype=torch.float32))
    assert torch.allclose(centroid, uv[0, 0] * RES, atol=0.6)
    assert z.item() > 0


def test_image_orientation_follows_opencv_convention(renderer: GLRenderer) -> None:
    """Camera on +Z looking at the origin: +X appears on the right, +Y (up) in the top half."""
    cams = _front(3.0)
    right = renderer.render(_coloured(trimesh.creation.icosphere(2, radius=0.1).apply_translation((0.6, 0, 0))), cams)
    up = renderer.render(_coloured(trimesh.creation.icosphere(2, radius=0.1).apply_translation((0, 0.6, 0))), cams)
    cols = torch.nonzero(right.mask[0, 0] > 0.5)[:, 1].float()
    rows = torch.nonzero(up.mask[0, 0] > 0.5)[:, 0].float()
    assert cols.mean() > RES / 2 + 5 and rows.mean() < RES / 2 - 5


def test_camera_orbit_round_trip() -> None:
    az = torch.tensor([-170.0, -30.0, 0.0, 45.0, 120.0])
    el = torch.tensor([-60.0, -10.0, 0.0, 30.0, 80.0])
    cams = Cameras.from_orbit(az, el, torch.tensor([2.0, 2.5, 3.0, 3.5, 4.0]), FOV)
    az2, el2, radius = cams.to_orbit()
    assert torch.allclose(az2, az, atol=1e-3) and torch.allclose(el2, el, atol=1e-3)
    assert torch.allclose(radius, torch.tensor([2.0, 2.5, 3.0, 3.5, 4.0]), atol=1e-5)
    # OpenGL pose: same centre, looks along -z, and the origin projects to the image centre.
    gl = cams.opengl_cam2world()
    assert torch.allclose(gl[:, :3, 3], cams.cam2world[:, :3, 3])
    assert torch.allclose(-gl[:, :3, 2], torch.nn.functional.normalize(-cams.cam2world[:, :3, 3], dim=-1), atol=1e-5)
    uv, _ = cams.project(torch.zeros(5, 1, 3))
    assert torch.allclose(uv, torch.full_like(uv, 0.5), atol=1e-5)


def test_one_mesh_per_camera_and_empty_mesh(renderer: GLRenderer) -> None:
    small = _coloured(trimesh.creation.box(extents=(0.5, 0.5, 0.5)))
    big = _coloured(trimesh.creation.box(extents=(1.0, 1.0, 1.0)))
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    out = renderer.render([small, big, empty], _front(3.0, 3))
    areas = out.mask.sum(dim=(1, 2, 3))
    assert areas[0] < areas[1] and areas[2] == 0
    assert torch.allclose(out.rgb[2], torch.ones(3, RES, RES))
    with pytest.raises(ValueError, match="one per camera"):
        renderer.render([small, big], _front(3.0, 3))


def test_unlit_reproduces_vertex_colours_and_textures(backend: str) -> None:
    flat = create_renderer(backend, 32, unlit=True, compute_normals=False)
    out = flat.render(_coloured(trimesh.creation.box(), (200, 100, 50)), _front(3.0))
    assert torch.allclose(out.rgb[0, :, 16, 16] * 255, torch.tensor([200.0, 100.0, 50.0]), atol=1)
    # A quad textured red (top left), green (top right), blue (bottom left), white (bottom right): UV (0, 1) is
    # the image's top-left corner (glTF), +X is image right and +Y image up.
    v = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], float)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    image = np.zeros((16, 16, 3), np.uint8)
    image[:8, :8], image[:8, 8:] = (255, 0, 0), (0, 255, 0)
    image[8:, :8], image[8:, 8:] = (0, 0, 255), (255, 255, 255)
    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(image), diffuse=(255, 255, 255, 255))
    quad = trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 3]], visual=trimesh.visual.TextureVisuals(uv=uv, material=material), process=False)
    out = flat.render(quad, _front(3.0))
    quadrants = {(11, 11): (1, 0, 0), (11, 20): (0, 1, 0), (20, 11): (0, 0, 1), (20, 20): (1, 1, 1)}
    for (row, col), rgb in quadrants.items():
        assert torch.allclose(out.rgb[0, :, row, col], torch.tensor(rgb, dtype=torch.float32), atol=0.05), (row, col)
    # A PBR material's base colour factor multiplies the texture.
    pbr = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(image), baseColorFactor=(255, 128, 255, 255))
    quad.visual = trimesh.visual.TextureVisuals(uv=uv, material=pbr)
    tinted = flat.render(quad, _front(3.0))
    assert tinted.rgb[0, 1, 20, 20] == pytest.approx(128 / 255, abs=0.02) and tinted.rgb[0, 0, 20, 20] > 0.97


def test_lit_texture_is_decoded_from_srgb(backend: str) -> None:
    """A texture of one sRGB colour lights like the equivalent linear base colour (glTF), not like the raw value."""
    v = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], float)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    grey = 128
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(np.full((4, 4, 3), grey, np.uint8)), metallicFactor=0.0, roughnessFactor=1.0)
    quad = trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 3]], visual=trimesh.visual.TextureVisuals(uv=uv, material=material), process=False)
    light = Lighting(lights=(), ambient=(1.0, 1.0, 1.0))  # ambient only: colour = base colour, then gamma 1/2.2
    out = create_renderer(backend, 32, lighting=light, compute_normals=False).render(quad, _front(3.0))
    srgb = grey / 255
    linear = ((srgb + 0.055) / 1.055) ** 2.4
    assert out.rgb[0, 0, 16, 16].item() == pytest.approx(linear ** (1 / 2.2), abs=2 / 255)


def test_lighting_shades_faces_differently(backend: str, renderer: GLRenderer) -> None:
    """Two beams from below-left and below-right: the top face of a cube gets only ambient light."""
    cams = Cameras.from_orbit(torch.tensor([45.0]), torch.tensor([35.0]), 3.0, FOV)
    out = renderer.render(_coloured(trimesh.creation.box(), (180, 180, 180)), cams)
    hit = out.mask[0, 0] > 0.5
    n = out.normals[0]
    top = hit & (n[1] > 0.9)
    side = hit & (n[0] > 0.9)
    assert top.sum() > 20 and side.sum() > 20
    assert out.rgb[0, :, top].mean() < out.rgb[0, :, side].mean() - 0.1
    headlit = create_renderer(backend, RES, lighting=Lighting.headlight(), compute_normals=False).render(
        _coloured(trimesh.creation.box(), (180, 180, 180)), cams)
    assert not torch.allclose(headlit.rgb, out.rgb)


def test_supersampling_gives_soft_edges_and_same_area(backend: str) -> None:
    sphere = _coloured(trimesh.creation.icosphere(subdivisions=4, radius=0.8))
    hard = create_renderer(backend, 32, compute_normals=False).render(sphere, _front(3.0))
    soft = create_renderer(backend, 32, supersample=3, compute_normals=False).render(sphere, _front(3.0))
    assert ((soft.mask > 0.05) & (soft.mask < 0.95)).sum() > 10
    assert soft.mask.sum().item() == pytest.approx(hard.mask.sum().item(), rel=0.05)
    assert soft.depth[soft.mask > 0].min() == pytest.approx(2.2, abs=0.02)


def test_render_voxels_matches_sphere_silhouette(renderer: GLRenderer) -> None:
    d, r, grid = 3.0, 0.7, 48
    axis = torch.linspace(-1, 1, grid)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    occupancy = ((x**2 + y**2 + z**2).sqrt() < r).float()
    cams = _front(d, 2)
    out = renderer.render_voxels(torch.stack([occupancy, torch.zeros_like(occupancy)]), cams, threshold=0.5)
    radius_px = float(fov_to_focal(FOV)) * RES * r / math.sqrt(d * d - r * r)
    assert out.mask[0].sum().item() == pytest.approx(math.pi * radius_px**2, rel=0.08)
    assert out.mask[1].sum().item() == 0


def test_crease_shading_matches_trimesh_smooth_shade() -> None:
    """The fast per-corner crease normals agree with trimesh's reference implementation."""
    from scipy.spatial import cKDTree

    from unflat.data.synth import make_shape
    from unflat.render.gl_scene import crease_shaded

    mesh = make_shape("car", 3).mesh
    ours = crease_shaded(mesh, 30.0)
    reference = trimesh.graph.smooth_shade(mesh, angle=math.radians(30.0))
    # Every corner of ours has a reference vertex at the same place with (nearly) the same normal.
    tree = cKDTree(np.hstack([reference.vertices, reference.vertex_normals * 1e-3]))
    distance, _ = tree.query(np.hstack([ours.vertices, ours.vertex_normals * 1e-3]))
    assert distance.max() < 1e-4  # positions exact, normals within ~0.1
    box = crease_shaded(trimesh.creation.box(), 30.0)
    assert np.allclose(box.vertex_normals, np.repeat(trimesh.creation.box().face_normals, 3, axis=0))
    assert np.array_equal(np.asarray(ours.visual.vertex_colors), np.asarray(mesh.visual.vertex_colors)[mesh.faces.reshape(-1)])
