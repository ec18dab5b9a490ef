"""Marching cubes against analytic shapes: area, volume, placement, orientation, axis order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unflat.geometry.marching_cubes import extract_from_function, extract_mesh, grid_points, sample_grid


def sphere_sdf(centre=(0.0, 0.0, 0.0), radius=0.5):
    c = torch.tensor(centre)
    return lambda p: (p - c.to(p)).norm(dim=-1) - radius


def test_sphere_area_and_volume_match_analytic():
    mesh = extract_from_function(sphere_sdf(radius=0.6), resolution=64)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.area == pytest.approx(4 * math.pi * 0.36, rel=0.01)
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.216, rel=0.01)  # positive: normals point out


def test_normals_point_outward_for_sdf_and_density():
    for fn, inside, level in [
        (sphere_sdf(radius=0.5), "below", 0.0),
        (lambda p: torch.exp(-8 * p.pow(2).sum(-1)), "above", math.exp(-2.0)),  # density, same sphere
    ]:
        mesh = extract_from_function(fn, resolution=40, inside=inside, level=level)
        outward = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center)
        assert (outward > 0).all()
        assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.125, rel=0.03)


def test_shape_on_plus_y_lands_at_plus_y():
    mesh = extract_from_function(sphere_sdf(centre=(0.0, 0.5, 0.0), radius=0.3), resolution=48)
    centre = mesh.vertices.mean(axis=0)
    np.testing.assert_allclose(centre, [0.0, 0.5, 0.0], atol=0.01)


def test_grid_axis_order_is_x_y_z():
    # An ellipsoid with semi-axes (0.8, 0.5, 0.3) along (x, y, z).
    axes = torch.tensor([0.8, 0.5, 0.3])
    mesh = extract_from_function(lambda p: (p / axes).norm(dim=-1) - 1, resolution=64)
    extents = mesh.bounds[1] - mesh.bounds[0]
    np.testing.assert_allclose(extents, 2 * axes.numpy(), atol=0.04)
    # And field[i, j, k] really is the value at (x_i, y_j, z_k).
    field = sample_grid(lambda p: p[:, 0] + 10 * p[:, 1] + 100 * p[:, 2], (3, 4, 5))
    points = grid_points((3, 4, 5)).numpy()
    np.testing.assert_allclose(field, points[..., 0] + 10 * points[..., 1] + 100 * points[..., 2], atol=1e-5)
    assert points[2, 0, 0].tolist() == [1.0, -1.0, -1.0]


def test_bounds_scale_the_mesh():
    mesh = extract_from_function(sphere_sdf(radius=1.0), resolution=48, bounds=(-2.0, 2.0))
    np.testing.assert_allclose(mesh.bounds, [[-1, -1, -1], [1, 1, 1]], atol=0.01)


def test_shape_touching_the_bounds_is_closed_there():
    cube = lambda p: p.abs().amax(dim=-1) - 2.0  # noqa: E731 (fills the whole grid)
    closed = extract_from_function(cube, resolution=16)
    assert closed.is_watertight
    assert closed.volume == pytest.approx(8.0, rel=1e-6)
    np.testing.assert_allclose(closed.bounds, [[-1, -1, -1], [1, 1, 1]])
    assert len(extract_from_function(cube, resolution=16, close_at_bounds=False).faces) == 0


def test_empty_field_gives_empty_mesh_and_bad_input_raises():
    assert len(extract_mesh(np.ones((8, 8, 8)), level=0.0).vertices) == 0
    with pytest.raises(ValueError):
        extract_mesh(np.zeros((8, 8)), level=0.0)
    with pytest.raises(ValueError):
        extract_mesh(np.full((4, 4, 4), np.nan), level=0.0)


def test_chunk_size_and_tensor_input_do_not_change_the_result():
    fn = sphere_sdf(radius=0.55)
    a = extract_from_function(fn, resolution=24, chunk=333)
    b = extract_from_function(fn, resolution=24, chunk=1 << 20)
    c = extract_mesh(torch.from_numpy(sample_grid(fn, 24)), level=0.0)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_allclose(a.vertices, c.vertices)


def test_module_field_is_queried_without_grad_on_its_device():
    class Field(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.radius = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, points: torch.Tensor) -> torch.Tensor:
            assert not torch.is_grad_enabled()
            return points.norm(dim=-1, keepdim=True) - self.radius  # [N,1] is accepted too

    mesh = extract_from_function(Field(), resolution=24)
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.125, rel=0.05)
