"""The differentiable rasteriser, checked against analytic cases, brute force, an independent UV
rasteriser (unflat.export.texture) and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unflat.cameras import Cameras
from unflat.geometry.sphere_template import sphere_template
from unflat.render import nvdiffrast_backend
from unflat.render.rasterizer import (
    TorchRasterizer,
    clip_from_cameras,
    interpolate,
    project_to_uv,
    rasterize,
    render_textured_mesh,
    soft_silhouette,
    texture,
    uv_fragments,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _ndc_triangle(points, w=(1.0, 1.0, 1.0), dtype=torch.float32):
    """Clip coordinates [1,3,4] of a triangle given in NDC xy with per-vertex w."""
    rows = [[x * wi, y * wi, 0.0, wi] for (x, y), wi in zip(points, w)]
    return torch.tensor([rows], dtype=dtype)


def _inside_brute_force(tri_px: np.ndarray, size: int) -> np.ndarray:
    """Pixel centres (integer coords) inside a 2D triangle, by solving for barycentrics."""
    rows, cols = np.mgrid[0:size, 0:size]
    p = np.stack([cols, rows], -1).reshape(-1, 2).astype(np.float64)
    a, b, c = tri_px
    m = np.array([b - a, c - a]).T
    lam = np.linalg.solve(m, (p - a).T).T
    bary = np.stack([1 - lam.sum(1), lam[:, 0], lam[:, 1]], 1)
    return (bary >= 0).all(1).reshape(size, size)


def test_hard_silhouette_of_a_known_triangle():
    size = 32
    points = [(-0.71, -0.63), (0.83, -0.22), (-0.05, 0.77)]
    frags = rasterize(_ndc_triangle(points), torch.tensor([[0, 1, 2]]), size, backend="torch")
    tri_px = (np.array(points) + 1) / 2 * size - 0.5
    expected = _inside_brute_force(tri_px, size)
    assert expected.sum() > 100
    assert np.array_equal((frags.face_id[0] >= 0).numpy(), expected)
    # Row 0 is NDC y = -1 (the top of an OpenCV image): the triangle's low vertex is in the top rows.
    assert frags.face_id[0, : size // 4].ge(0).any() and not frags.face_id[0, -2:].ge(0).any()


def test_soft_silhouette_matches_brute_force_dibr_formula():
    size, sigma = 24, 2.0
    points = [(-0.6, -0.5), (0.7, -0.3), (0.1, 0.6)]
    sil = soft_silhouette(_ndc_triangle(points), torch.tensor([[0, 1, 2]]), size, sigma=sigma, cutoff=40.0)[0, 0]
    tri = (np.array(points) + 1) / 2 * size - 0.5
    inside = _inside_brute_force(tri, size)
    rows, cols = np.mgrid[0:size, 0:size]
    p = np.stack([cols, rows], -1).astype(np.float64)

    def seg_d2(a, b):
        t = np.clip(((p - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(), 0, 1)
        return ((p - (a + t[..., None] * (b - a))) ** 2).sum(-1)

    d2 = np.minimum(np.minimum(seg_d2(tri[0], tri[1]), seg_d2(tri[1], tri[2])), seg_d2(tri[2], tri[0]))
    expected = np.where(inside, 1.0, np.exp(-d2 / sigma))
    assert np.allclose(sil.numpy(), expected, atol=1e-5)
    assert (sil.numpy()[inside] == 1).all() and sil.min() >= 0


def test_soft_silhouette_aggregates_faces():
    # Two disjoint triangles near one background pixel: 1 - (1 - D1)(1 - D2).
    size, sigma = 16, 4.0
    verts = torch.tensor([[[-0.9, -0.9, 0, 1], [-0.2, -0.9, 0, 1], [-0.9, -0.1, 0, 1],
                           [0.9, 0.9, 0, 1], [0.2, 0.9, 0, 1], [0.9, 0.1, 0, 1.0]]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    both = soft_silhouette(verts, faces, size, sigma, cutoff=60.0)
    one = soft_silhouette(verts, faces[:1], size, sigma, cutoff=60.0)
    two = soft_silhouette(verts, faces[1:], size, sigma, cutoff=60.0)
    assert torch.allclose(both, 1 - (1 - one) * (1 - two), atol=1e-6)


def test_nearest_face_wins_regardless_of_order():
    near = [[-0.8, -0.8, 0, 2.0], [0.8, -0.8, 0, 2.0], [0.0, 0.8, 0, 2.0]]
    far = [[-0.9, -0.5, 0, 5.0], [0.9, -0.5, 0, 5.0], [0.0, 0.9, 0, 5.0]]
    for order in ([near, far], [far, near]):
        verts = torch.tensor([[v for tri in order for v in tri]])
        # xy given in NDC: scale by w so the projected triangles are as written.
        verts[..., :2] *= verts[..., 3:]
        frags = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), 16, backend="torch")
        near_id = 0 if order[0] is near else 1
        centre = frags.face_id[0, 8, 8].item()
        assert centre == near_id
        assert torch.allclose(frags.depth[0, 8, 8], torch.tensor(2.0))


def test_perspective_correct_interpolation_and_depth_against_ray_casting():
    """Interpolated world positions must lie where each pixel's ray meets the triangle's plane."""
    cams = Cameras.from_orbit(torch.tensor([25.0]), torch.tensor([15.0]), 2.5, 40.0)
    tri = torch.tensor([[[-0.8, -0.6, -0.5], [0.9, -0.3, 0.6], [-0.1, 0.8, 0.2]]])
    faces = torch.tensor([[0, 1, 2]])
    size = 32
    frags = rasterize(clip_from_cameras(tri, cams), faces, size, backend="torch")
    pos = interpolate(tri, frags, faces)[0]  # [H,W,3]
    covered = frags.face_id[0] >= 0
    assert covered.sum() > 50
    origins, dirs = cams.rays(size, size)
    origins, dirs = origins[0].view(size, size, 3), dirs[0].view(size, size, 3)
    normal = torch.cross(tri[0, 1] - tri[0, 0], tri[0, 2] - tri[0, 0], dim=0)
    t = ((tri[0, 0] - origins) @ normal) / (dirs @ normal)
    hit = origins + t[..., None] * dirs
    assert torch.allclose(pos[covered], hit[covered], atol=1e-4)
    # Depth = camera z of that point; screen-space (affine) interpolation would be off by far more.
    z_cam = ((hit - origins) * cams.cam2world[0, :3, 2]).sum(-1)
    assert torch.allclose(frags.depth[0][covered], z_cam[covered], atol=1e-4)
    # Barycentrics sum to one and are non-negative inside.
    bary = frags.bary[0][covered]
    assert torch.allclose(bary.sum(-1), torch.ones(len(bary)), atol=1e-5) and (bary >= -1e-6).all()


def test_texture_lookup_convention():
    tex = torch.arange(12.0).view(1, 1, 3, 4)  # rows 0..2, columns 0..3
    uv = torch.tensor([[[[0.5 / 4, 0.5 / 3], [3.5 / 4, 2.5 / 3]]]])  # texel (0,0) and (2,3) centres
    out = texture(tex, uv)
    assert out.shape == (1, 1, 2, 1)
    assert torch.allclose(out[0, 0, :, 0], torch.tensor([0.0, 11.0]), atol=1e-5)


def test_uv_rasterisation_matches_the_independent_numpy_rasteriser():
    from unflat.export.texture import rasterise_uv

    template = sphere_template(6, 10)
    size = 32
    frags = uv_fragments(template.uv, template.faces_uv, size, backend="torch")
    flipped = template.uv.numpy().astype(np.float64).copy()
    flipped[:, 1] = 1 - flipped[:, 1]  # that module's v grows upwards
    face_ids, _, texels = rasterise_uv(flipped, template.faces_uv.numpy(), size)
    theirs = np.zeros((size, size), bool)
    theirs[texels[:, 0], texels[:, 1]] = True
    ours = (frags.face_id[0] >= 0).numpy()
    # Everything but the gaps between pole triangles (half of each pole band): 1 - 1/rings.
    assert abs(ours.mean() - (1 - 1 / 6)) < 0.02
    assert np.array_equal(ours, theirs)
    # Where a texel lies strictly inside one face both agree on the face.
    uv_interp = interpolate(template.uv, frags, template.faces_uv)[0].numpy()
    rows, cols = np.mgrid[0:size, 0:size]
    centres = np.stack([(cols + 0.5) / size, (rows + 0.5) / size], -1)
    assert np.allclose(uv_interp[ours], centres[ours], atol=1e-5)
    agree = frags.face_id[0].numpy()[texels[:, 0], texels[:, 1]] == face_ids
    assert agree.mean() > 0.97  # the rest are texel centres on shared edges, where either face is right


def test_gradcheck_soft_silhouette_wrt_vertices():
    verts = _ndc_triangle([(-0.53, -0.41), (0.47, -0.29), (0.07, 0.52)], w=(1.1, 0.9, 1.3), dtype=torch.float64)
    verts.requires_grad_(True)
    faces = torch.tensor([[0, 1, 2]])
    assert torch.autograd.gradcheck(lambda v: soft_silhouette(v, faces, 8, sigma=1.5), (verts,), eps=1e-6, atol=1e-6)


def test_gradcheck_interpolated_colour_wrt_vertices_and_colours():
    verts = torch.tensor([[[-0.61, -0.57, 0.1, 1.2], [0.66, -0.43, 0.2, 0.8], [0.05, 0.71, 0.0, 1.0],
                           [0.72, 0.64, 0.3, 1.5]]], dtype=torch.float64)
    verts[..., :2] *= verts[..., 3:]
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    colours = torch.rand(1, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    verts.requires_grad_(True)
    colours.requires_grad_(True)

    def shade(v, c):
        return interpolate(c, rasterize(v, faces, 8, backend="torch"), faces)

    assert torch.autograd.gradcheck(shade, (verts, colours), eps=1e-6, atol=1e-6)


def test_gradcheck_texture_wrt_texture_and_uv():
    gen = torch.Generator().manual_seed(1)
    tex = torch.rand(1, 3, 5, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    uv = (torch.rand(1, 4, 4, 2, dtype=torch.float64, generator=gen) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(texture, (tex, uv), eps=1e-6, atol=1e-6)


def test_sphere_template_is_closed_outward_and_mirror_symmetric_in_uv():
    import trimesh

    t = sphere_template(8, 14)
    assert t.num_faces == 196
    mesh = trimesh.Trimesh(t.vertices.numpy(), t.faces.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    # Geometry and UV faces are the same triangles.
    assert torch.equal(t.uv_vertex[t.faces_uv], t.faces)
    # A map mirrored upside down (x channel negated) deforms the sphere into a mirror-symmetric mesh.
    half = torch.randn(1, 3, 4, 8, generator=torch.Generator().manual_seed(0))
    full = torch.cat([half, half.flip(-2) * torch.tensor([-1.0, 1, 1]).view(1, 3, 1, 1)], -2)
    verts = t.vertices + 0.2 * t.sample_vertex_map(full)[0]
    mirrored = verts * torch.tensor([-1.0, 1, 1])
    distances = (mirrored[:, None] - verts[None]).norm(dim=-1)
    assert distances.min(1).values.max() < 1e-5


def test_render_textured_mesh_shapes_and_background():
    t = sphere_template(8, 12)
    cams = Cameras.from_orbit(torch.tensor([0.0, 90.0]), torch.tensor([0.0, 30.0]), 2.5, 30.0)
    tex = torch.full((2, 3, 8, 8), 0.25)
    out = render_textured_mesh(t.vertices[None].expand(2, -1, -1) * 0.5, t.faces, t.uv, t.faces_uv, tex, cams, 24,
                               background=1.0, backend="torch")
    cov = out.extras["coverage"]
    assert out.rgb.shape == (2, 3, 24, 24) and out.mask.shape == (2, 1, 24, 24)
    assert torch.allclose(out.rgb[cov.expand_as(out.rgb) > 0], torch.tensor(0.25))
    assert torch.allclose(out.rgb[cov.expand_as(out.rgb) == 0], torch.tensor(1.0))
    # A sphere of radius 0.5 at distance 2.5 with a 30 degree FoV: its silhouette's area is known.
    half_angle = math.asin(0.5 / 2.5)
    radius_px = math.tan(half_angle) / math.tan(math.radians(15)) * 12
    assert abs(cov[0].sum().item() - math.pi * radius_px**2) < 0.08 * math.pi * radius_px**2
    assert (out.depth[cov > 0] > 2.0).all() and (out.depth[cov == 0] == 0).all()


def _cube_with_atlas():
    """A unit cube (half-size 0.5), 4 vertices per side, each side a cell of a 3x2 UV atlas."""
    sides = [  # (normal, u axis, v axis)
        ((1, 0, 0), (0, 0, -1), (0, -1, 0)), ((-1, 0, 0), (0, 0, 1), (0, -1, 0)),
        ((0, 1, 0), (1, 0, 0), (0, 0, 1)), ((0, -1, 0), (1, 0, 0), (0, 0, -1)),
        ((0, 0, 1), (1, 0, 0), (0, -1, 0)), ((0, 0, -1), (-1, 0, 0), (0, -1, 0)),
    ]
    verts, uv, faces = [], [], []
    for k, (n, a, b) in enumerate(sides):
        n, a, b = (np.array(x, np.float64) for x in (n, a, b))
        cell_u, cell_v = (k % 3) / 3, (k // 3) / 2
        base = len(verts)
        for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
            verts.append(0.5 * n + (du - 0.5) * a + (dv - 0.5) * b)
            uv.append((cell_u + (0.02 + 0.96 * du) / 3, cell_v + (0.02 + 0.96 * dv) / 2))
        faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return (torch.tensor(np.array(verts), dtype=torch.float32), torch.tensor(faces),
            torch.tensor(np.array(uv), dtype=torch.float32), sides)


def test_visibility_masks_on_a_cube():
    verts, faces, uv, sides = _cube_with_atlas()
    size, tex_res = 64, 48
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9],
                            [0.9, 0.9, 0.1], [0.1, 0.9, 0.9], [0.9, 0.1, 0.9]])
    atlas = torch.zeros(1, 3, tex_res, tex_res)
    rows, cols = tex_res // 2, tex_res // 3
    for k, c in enumerate(colours):
        r, q = divmod(k, 3)
        atlas[0, :, r * rows:(r + 1) * rows, q * cols:(q + 1) * cols] = c[:, None, None]
    cams = Cameras.from_orbit(torch.tensor([30.0]), torch.tensor([20.0]), 3.0, 40.0)
    image = render_textured_mesh(verts[None], faces, uv, faces, atlas, cams, size, backend="torch", with_silhouette=False)
    partial, vis = project_to_uv(image.rgb, verts[None], faces, uv, faces, cams, tex_res, backend="torch")
    eye = cams.cam2world[0, :3, 3]
    for k, (normal, _, _) in enumerate(sides):
        r, q = divmod(k, 3)
        # Interior texels of the side's cell (away from the cell border and the atlas margin).
        cell = (slice(r * rows + 3, (r + 1) * rows - 3), slice(q * cols + 3, (q + 1) * cols - 3))
        cell_vis = vis[0, 0][cell]
        facing = float((torch.tensor(normal, dtype=torch.float32) * (eye - 0.5 * torch.tensor(normal, dtype=torch.float32))).sum()) > 0
        if facing:
            assert cell_vis.mean() > 0.95, (k, cell_vis.mean())
            seen = partial[0][:, cell[0], cell[1]][:, cell_vis > 0]
            error = (seen - colours[k][:, None]).abs().amax(0)
            # Bilinear lookups near a side's edges mix in the next side's colour (grazing views).
            assert (error < 0.03).float().mean() > 0.85, (k, (error < 0.03).float().mean())
        else:
            assert cell_vis.sum() == 0, k
    assert int(sum(float((torch.tensor(n, dtype=torch.float32) * eye).sum()) > 0.5 for n, _, _ in sides)) == 3
    # A mask that excludes everything hides every texel.
    _, none = project_to_uv(image.rgb, verts[None], faces, uv, faces, cams, tex_res,
                            masks=torch.zeros(1, 1, size, size), backend="torch")
    assert none.sum() == 0


def test_chunking_does_not_change_results():
    t = sphere_template(10, 16)
    cams = Cameras.from_orbit(torch.tensor([10.0, 200.0]), torch.tensor([5.0, -20.0]), 2.5, 30.0)
    clip = clip_from_cameras(t.vertices[None].expand(2, -1, -1) * 0.6, cams)
    big = TorchRasterizer().face_ids(clip, t.faces, (40, 40))
    small = TorchRasterizer(max_pairs=97).face_ids(clip, t.faces, (40, 40))
    assert torch.equal(big, small)
    assert torch.allclose(soft_silhouette(clip, t.faces, 40), soft_silhouette(clip, t.faces, 40, max_pairs=97))


@pytest.mark.skipif(not (torch.cuda.is_available() and nvdiffrast_backend.available("cuda")), reason="needs CUDA + nvdiffrast")
def test_nvdiffrast_backend_matches_torch_backend():
    t = sphere_template(16, 24).to("cuda")
    cams = Cameras.from_orbit(torch.tensor([10.0, 120.0]), torch.tensor([15.0, -10.0]), 2.5, 30.0).to("cuda")
    clip = clip_from_cameras(t.vertices[None].expand(2, -1, -1) * 0.6, cams)
    a = rasterize(clip, t.faces, 64, backend="torch")
    b = rasterize(clip, t.faces, 64, backend="nvdiffrast")
    same = a.face_id == b.face_id
    assert same.float().mean() > 0.99  # differences only on shared edges (tie rules)
    assert torch.allclose(a.bary[same], b.bary[same], atol=1e-4)
    assert torch.allclose(a.depth[same], b.depth[same], atol=1e-4)


def test_silhouette_gradients_fit_a_shape_from_three_views():
    """Vertex offsets optimised through the soft silhouette alone recover an ellipsoid's outline."""
    from unflat.losses.silhouette import iou_loss

    t = sphere_template(8, 14)
    cams = Cameras.from_orbit(torch.tensor([0.0, 90.0, 200.0]), torch.tensor([10.0, 30.0, -20.0]), 2.5, 40.0)
    target_verts = t.vertices[None].expand(3, -1, -1) * torch.tensor([0.8, 0.5, 0.6])
    target = rasterize(clip_from_cameras(target_verts, cams), t.faces, 16, backend="torch").mask
    offsets = torch.zeros(1, t.num_vertices, 3, requires_grad=True)
    opt = torch.optim.Adam([offsets], lr=0.01)
    losses = []
    for _ in range(40):
        verts = (t.vertices[None] * 0.5 + offsets).expand(3, -1, -1)
        loss = iou_loss(soft_silhouette(clip_from_cameras(verts, cams), t.faces, 16), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.2 and losses[-1] < 0.09, (losses[0], losses[-1])


def test_nvdiffrast_output_conversion():
    """nvdiffrast returns (u, v, z/w, face+1) per pixel; its conversion must give the same fragments as
    the PyTorch backend when fed that layout (checked on CPU; the CUDA comparison is the test above)."""
    t = sphere_template(6, 10)
    cams = Cameras.from_orbit(torch.tensor([30.0]), torch.tensor([20.0]), 2.5, 30.0)
    clip = clip_from_cameras(t.vertices[None] * 0.6, cams)
    ours = rasterize(clip, t.faces, 24, backend="torch")
    z_over_w = interpolate(clip[..., 2:3] / clip[..., 3:4], ours, t.faces)[..., 0]
    rast = torch.stack([ours.bary[..., 0], ours.bary[..., 1], z_over_w, (ours.face_id + 1).float()], -1)
    converted = nvdiffrast_backend.fragments_from_nvdiffrast(rast, clip, t.faces)
    assert torch.equal(converted.face_id, ours.face_id)
    assert torch.allclose(converted.bary, ours.bary, atol=1e-6)
    assert torch.allclose(converted.depth, ours.depth, atol=1e-5)
