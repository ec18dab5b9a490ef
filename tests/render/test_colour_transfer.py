"""Input colours onto a predicted texture, on an analytic case: a sphere seen by a known camera in an
image whose left half is red and right half blue. Visible texels (by the sphere's own geometry, not the
rasteriser) take the colour of the half they project into; hidden texels keep the predicted colour; the
mirror option fills hidden texels from their mirror images. And the camera search finds the pose of an
elongated ellipsoid from its silhouette."""

from __future__ import annotations

import math

import torch

from unflat.cameras import Cameras
from unflat.geometry.sphere_template import sphere_template
from unflat.render.colour_transfer import blend_projected_texture, estimate_orbit_camera, feather_visibility
from unflat.render.rasterizer import project_to_uv, render_textured_mesh

T = 32
RADIUS = 0.5


def texel_points() -> torch.Tensor:
    """[T*T,3]: the exact sphere point of each texel centre (unflat's template: v from the +X pole, u around X)."""
    v, u = torch.meshgrid((torch.arange(T) + 0.5) / T, (torch.arange(T) + 0.5) / T, indexing="ij")
    theta, phi = math.pi * v, 2 * math.pi * u
    p = torch.stack([torch.cos(theta), torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi)], -1)
    return (p * RADIUS).reshape(-1, 3)


def test_visible_texels_take_the_input_colours_and_hidden_ones_keep_the_prediction():
    torch.manual_seed(0)
    template = sphere_template(24, 32)
    verts = template.vertices[None] * RADIUS
    cam = Cameras.from_orbit(torch.tensor([30.0]), torch.tensor([20.0]), 2.5, 40.0)
    res = 96
    image = torch.zeros(1, 3, res, res)
    image[:, 0, :, : res // 2] = 1  # red left half (x < 0.5 of the image)
    image[:, 2, :, res // 2:] = 1  # blue right half
    image = image * 2 - 1  # [-1, 1] like the network's images
    predicted = torch.zeros(1, 3, T, T)  # mid grey in [-1, 1]
    partial, vis = project_to_uv(image, verts, template.faces, template.uv, template.faces_uv, cam, T,
                                 backend="torch")
    out = blend_projected_texture(predicted, partial, vis, strength=1.0, feather=0)

    points = texel_points()
    eye = cam.cam2world[0, :3, 3]
    facing = ((eye - points) * points).sum(-1) / ((eye - points).norm(dim=-1) * RADIUS)  # cos of the view angle
    image_uv, _ = cam.project(points[None])
    x = image_uv[0, :, 0]
    colours = out[0].reshape(3, -1).T
    # texels of the pole bands (v < 1/rings or > 1 - 1/rings) are only partly covered by the template's pole
    # triangles in UV space (one UV per pole triangle): left out, like the image's dividing line
    v = ((torch.arange(T) + 0.5) / T).repeat_interleave(T)
    away_from_poles = (v > 1 / 24) & (v < 1 - 1 / 24)
    front = (facing > 0.3) & ((x - 0.5).abs() > 0.03) & away_from_poles
    back = facing < -0.1
    assert front.sum() > 100 and back.sum() > 100
    red, blue = front & (x < 0.5), front & (x > 0.5)
    assert torch.allclose(colours[red], torch.tensor([1.0, -1, -1]), atol=0.05)
    assert torch.allclose(colours[blue], torch.tensor([-1.0, -1, 1]), atol=0.05)
    assert torch.equal(colours[back], torch.zeros_like(colours[back]))
    assert vis.reshape(-1)[front].all() and not vis.reshape(-1)[back].any()

    # strength blends linearly; feathering only lowers weights at the border of the visible region
    half = blend_projected_texture(predicted, partial, vis, strength=0.5, feather=0)
    assert torch.allclose(half[0].reshape(3, -1).T[red], torch.tensor([0.5, -0.5, -0.5]), atol=0.03)
    soft = feather_visibility(vis, 1)
    assert (soft <= vis).all() and (soft[vis == 1] > 0).float().mean() > 0.5

    # mirror: a hidden texel whose mirror image (x -> -x: rows flipped) is visible gets the mirrored colour
    mirrored = blend_projected_texture(predicted, partial, vis, strength=1.0, feather=0, mirror=True, mirror_strength=1.0)
    vis_rows = vis[0, 0]
    gets_mirror = (vis_rows == 0) & (vis_rows.flip(0) == 1)
    assert gets_mirror.sum() > 10
    assert torch.allclose(mirrored[0][:, gets_mirror], partial[0].flip(-2)[:, gets_mirror])
    assert torch.equal(mirrored[0][:, vis_rows == 1], out[0][:, vis_rows == 1])


def test_camera_search_recovers_the_view_of_an_elongated_ellipsoid():
    template = sphere_template(16, 24)
    verts = template.vertices[None] * torch.tensor([0.7, 0.3, 0.2])  # long in x, flat in z
    texture = torch.zeros(1, 3, 8, 8)
    res = 48

    def render(cams: Cameras):
        n = len(cams)
        out = render_textured_mesh(verts.expand(n, -1, -1), template.faces, template.uv, template.faces_uv,
                                   (texture.expand(n, -1, -1, -1) + 1) / 2, cams, res, backend="torch",
                                   with_silhouette=False)
        return out.rgb, out.extras["coverage"].float()

    truth = Cameras.from_orbit(torch.tensor([60.0]), torch.tensor([30.0]), 2.5, 40.0)
    rgb, coverage = render(truth)
    cam, scores = estimate_orbit_camera(render, rgb[0], coverage[0], 2.5, 40.0)
    _, found_cov = render(cam)
    iou = (found_cov * coverage).sum() / (found_cov + coverage - found_cov * coverage).sum()
    assert float(iou) > 0.97 and len(scores) == 36 * 4
    az, el, _ = cam.to_orbit()
    # the ellipsoid is symmetric under x -> -x and z -> -z: azimuth 60 or one of its mirror images
    assert min(abs(((float(az) - a) + 180) % 360 - 180) for a in (60, -60, 120, -120)) <= 10 and abs(float(el) - 30) <= 1
