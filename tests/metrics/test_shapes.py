"""3D metrics against hand-computed values, a second implementation and constructed sets."""

import math

import numpy as np
import pytest
import torch
import trimesh

from unflat.metrics.shapes import (
    chamfer_distance,
    fscore,
    generation_shape_metrics,
    grid_points,
    mesh_volume_iou,
    occupancy_grid,
    pairwise_chamfer,
    sample_points,
    volume_iou,
    winding_numbers,
)


def test_chamfer_hand_computed():
    a = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    b = torch.tensor([[0.0, 0, 0], [0, 2, 0], [1, 0.5, 0]])
    # a->b nearest squared: 0, 0.25 ; b->a: 0, 4, 0.25
    assert float(chamfer_distance(a, b, "l2_squared")) == pytest.approx(0.125 + 4.25 / 3)
    # unsquared: a->b 0, 0.5 ; b->a 0, 2, 0.5
    assert float(chamfer_distance(a, b, "l1")) == pytest.approx(0.5 * (0.25 + 2.5 / 3))
    batched = chamfer_distance(torch.stack([a, a + 1]), torch.stack([b, b + 1]))
    assert torch.allclose(batched, torch.full((2,), 0.125 + 4.25 / 3))


def test_chamfer_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(300, 3, generator=g), torch.rand(200, 3, generator=g)
    na, nb = a.double().numpy(), b.double().numpy()
    d = ((na[:, None] - nb[None]) ** 2).sum(-1)
    ref = d.min(1).mean() + d.min(0).mean()
    assert float(chamfer_distance(a, b)) == pytest.approx(ref, rel=1e-4)


def test_fscore_hand_computed():
    gt = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    pred = torch.tensor([[0.0, 0.005, 0], [1, 0.03, 0], [5, 0, 0]])
    (f,) = fscore(pred, gt, thresholds=(0.01,))
    assert f.precision == pytest.approx(1 / 3)
    assert f.recall == pytest.approx(1 / 4)
    assert f.fscore == pytest.approx(2 * (1 / 3) * (1 / 4) / (1 / 3 + 1 / 4))
    (f,) = fscore(pred, gt, thresholds=(0.05,))
    assert (f.precision, f.recall) == pytest.approx((2 / 3, 2 / 4))


def test_occupancy_box_exact_and_sphere_volume():
    # A box whose faces lie on voxel boundaries of a 16^3 grid over [-1,1]: exactly 4x8x2 voxels.
    box = trimesh.creation.box(extents=(0.5, 1.0, 0.25))
    box.apply_translation((0.25, 0.0, 0.125))
    grid = occupancy_grid(box, resolution=16)
    expected = torch.zeros(16, 16, 16, dtype=torch.bool)
    expected[8:12, 4:12, 8:10] = True
    assert torch.equal(grid, expected)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
    occ = occupancy_grid(sphere, resolution=40)
    assert float(occ.float().mean()) * 8 == pytest.approx(sphere.volume, rel=0.03)


def test_occupancy_agrees_with_winding_numbers():
    mesh = trimesh.creation.annulus(r_min=0.3, r_max=0.7, height=0.46)
    occ = occupancy_grid(mesh, resolution=20)
    wn = winding_numbers(grid_points(20).double(), torch.tensor(mesh.vertices), torch.tensor(mesh.faces))
    assert torch.equal(occ, (wn > 0.5).reshape(20, 20, 20))


def test_volume_iou_of_offset_boxes():
    a = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b.apply_translation((0.5, 0, 0))
    # overlap 0.5 of a unit cube; union 1.5
    assert mesh_volume_iou(a, b, resolution=16) == pytest.approx(1 / 3)
    assert mesh_volume_iou(a, a, resolution=16) == 1.0
    assert volume_iou(torch.zeros(3, 3, 3), torch.zeros(3, 3, 3)) == 1.0


def test_sample_points_on_surface():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    pts = sample_points(sphere, 500, seed=1)
    assert pts.shape == (500, 3)
    assert torch.allclose(pts.norm(dim=1), torch.full((500,), 0.5), atol=5e-3)
    assert torch.equal(pts, sample_points(sphere, 500, seed=1))


def _constructed_clouds(num: int, points: int, seed: int) -> torch.Tensor:
    """num clouds far apart from each other (cloud i centred at 10*i along x)."""
    g = torch.Generator().manual_seed(seed)
    clouds = torch.rand(num, points, 3, generator=g) * 0.5
    clouds[:, :, 0] += 10 * torch.arange(num)[:, None]
    return clouds


def test_pairwise_chamfer_matches_loop():
    a, b = _constructed_clouds(3, 20, 0), _constructed_clouds(4, 25, 1)
    d = pairwise_chamfer(a, b)
    for i in range(3):
        for j in range(4):
            assert float(d[i, j]) == pytest.approx(float(chamfer_distance(a[i], b[j])), rel=1e-5)


def test_cov_mmd_1nna_constructed_sets():
    reference = _constructed_clouds(6, 32, 2)
    # Generated: exact copies of reference shapes 0, 1, 2 (shape 0 twice): COV 3/6.
    generated = reference[[0, 0, 1, 2]].clone()
    result = generation_shape_metrics(generated, reference)
    assert result.coverage == pytest.approx(3 / 6)
    # MMD: covered shapes have distance 0; uncovered shape r (r = 3, 4, 5) is nearest to copy 2.
    expected = sum(float(chamfer_distance(reference[2], reference[r])) for r in (3, 4, 5)) / 6
    assert result.mmd == pytest.approx(expected, rel=1e-4)
    # A perfect generator (a jittered copy of every shape): COV 1, MMD ~0, 1-NNA 0 (every sample's
    # nearest neighbour is its twin in the other set).
    jitter = reference + 1e-3 * torch.randn(reference.shape, generator=torch.Generator().manual_seed(3))
    perfect = generation_shape_metrics(jitter, reference)
    assert perfect.coverage == 1.0 and perfect.mmd < 1e-4 and perfect.one_nna == 0.0
    # A generator far from everything: its samples are each other's nearest: 1-NNA 1.
    far = generation_shape_metrics(reference + 1000.0, reference)
    assert far.one_nna == 1.0
    assert "l2_squared" in far.to_json()
