"""Batched PyTorch marching cubes against scikit-image and analytic surfaces; the generated tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import measure

from unflat.geometry import mc_tables
from unflat.geometry.marching_cubes import extract_mesh, marching_cubes


def test_tables_match_the_classic_edge_table_and_are_consistent() -> None:
    # Bourke's edge table entries for one corner in / out and two corners along edge 0.
    assert mc_tables.EDGE_TABLE[1] == 0x109 and mc_tables.EDGE_TABLE[254] == 0x109
    assert mc_tables.EDGE_TABLE[3] == 0x30A and mc_tables.EDGE_TABLE[0] == 0 == mc_tables.EDGE_TABLE[255]
    for case in range(256):
        n = mc_tables.NUM_TRIANGLES[case]
        used = set(mc_tables.TRI_TABLE[case, : 3 * n].tolist())
        crossing = {e for e in range(12) if mc_tables.EDGE_TABLE[case] >> e & 1}
        assert used == crossing, case  # every crossing edge gets a vertex, no other edge does
        assert (mc_tables.TRI_TABLE[case, 3 * n :] == -1).all()
    assert mc_tables.NUM_TRIANGLES.max() == 5


@pytest.mark.parametrize("seed", [0, 1])
def test_vertices_and_face_count_equal_scikit_image_on_random_grids(seed: int) -> None:
    """skimage's classic (Lorensen) marching cubes puts one vertex on every crossing edge, as we do."""
    g = torch.rand(2, 9, 10, 11, generator=torch.Generator().manual_seed(seed))
    packed = marching_cubes(g, 0.5, inside="above", close_at_bounds=False)
    spacing = tuple(2 / (n - 1) for n in g.shape[1:])
    for i in range(2):
        vertices, faces = packed.mesh(i)
        ref_v, ref_f, _, _ = measure.marching_cubes(g[i].numpy(), 0.5, spacing=spacing, method="lorensen")
        ours = np.array(sorted(map(tuple, vertices.numpy().round(4))))
        theirs = np.array(sorted(map(tuple, (ref_v - 1.0).round(4))))
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() < 2e-4
        assert len(faces) == len(ref_f)


def test_sphere_area_volume_and_vertices_on_the_surface() -> None:
    r, res = 0.6, 48
    axis = torch.linspace(-1, 1, res)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    sdf = (x**2 + y**2 + z**2).sqrt() - r
    ours = extract_mesh(sdf, 0.0)
    reference = extract_mesh(sdf, 0.0, method="skimage")
    assert ours.is_watertight and ours.is_winding_consistent and ours.volume > 0  # outward faces
    assert ours.area == pytest.approx(reference.area, rel=1e-3)
    assert ours.volume == pytest.approx(reference.volume, rel=1e-3)
    assert ours.area == pytest.approx(4 * math.pi * r * r, rel=0.01)
    assert ours.volume == pytest.approx(4 / 3 * math.pi * r**3, rel=0.01)
    # Trilinear interpolation of the field at every vertex is the level (it lies on a grid edge).
    v = torch.as_tensor(ours.vertices, dtype=torch.float32)
    sampled = torch.nn.functional.grid_sample(sdf.permute(2, 1, 0)[None, None], v.view(1, -1, 1, 1, 3),
                                              align_corners=True).reshape(-1)
    assert sampled.abs().max() < 1e-4


def test_binary_grids_give_closed_outward_surfaces_and_batching_changes_nothing() -> None:
    g = (torch.rand(3, 14, 14, 14, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    g[1] = 0.0  # an empty grid gives an empty mesh
    packed = marching_cubes(g, 0.5, inside="above")
    meshes = packed.to_trimesh()
    assert len(meshes[1].faces) == 0 and packed.face_counts[1] == 0
    for i in (0, 2):
        assert meshes[i].is_watertight and meshes[i].volume > 0
        alone = marching_cubes(g[i : i + 1], 0.5, inside="above").to_trimesh()[0]
        assert np.array_equal(alone.vertices, meshes[i].vertices) and np.array_equal(alone.faces, meshes[i].faces)
        assert np.abs(meshes[i].vertices).max() <= 1.0  # closed at the bounds, inside them
    # "below" (an SDF) is the same surface as "above" of its negation
    field = torch.randn(1, 8, 8, 8, generator=torch.Generator().manual_seed(4))
    below = marching_cubes(field, 0.1, inside="below").to_trimesh()[0]
    above = marching_cubes(-field, -0.1, inside="above").to_trimesh()[0]
    assert np.allclose(below.vertices, above.vertices) and np.array_equal(below.faces, above.faces)
