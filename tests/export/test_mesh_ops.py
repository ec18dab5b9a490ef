"""Mesh clean-up: components, smoothing, decimation, normalisation, vertex colours."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from unflat.geometry.marching_cubes import extract_from_function
from unflat.geometry.mesh_ops import (
    CleanupConfig,
    cleanup,
    colour_vertices,
    decimate,
    drop_small_components,
    keep_largest_components,
    normalise_to_box,
    query_colours,
    smooth,
)


def two_spheres() -> trimesh.Trimesh:
    big = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    small = trimesh.creation.icosphere(subdivisions=2, radius=0.2)
    small.apply_translation([0.8, 0, 0])
    return trimesh.util.concatenate([big, small])


def test_keep_largest_components():
    mesh = two_spheres()
    largest = keep_largest_components(mesh, 1)
    assert len(largest.faces) == 1280 and largest.volume == pytest.approx(trimesh.creation.icosphere(3, 0.5).volume)
    assert len(keep_largest_components(mesh, 2).faces) == len(mesh.faces)


def test_drop_small_components_removes_a_planted_speck_and_keeps_the_parts():
    body = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    leg = trimesh.creation.box(extents=(0.4, 0.4, 0.4)).apply_translation((2.0, 0, 0))  # 0.96 / 6 = 16% of the area
    speck = trimesh.creation.icosphere(1, radius=0.05).apply_translation((0, 2.0, 0))  # ~0.5% of the area
    mesh = trimesh.util.concatenate([body, leg, speck])
    mesh.visual.vertex_colors = np.concatenate([np.tile([255, 0, 0, 255], (len(body.vertices), 1)),
                                                np.tile([0, 255, 0, 255], (len(leg.vertices), 1)),
                                                np.tile([0, 0, 255, 255], (len(speck.vertices), 1))]).astype(np.uint8)
    kept = drop_small_components(mesh, 0.05)
    assert len(kept.faces) == len(body.faces) + len(leg.faces)
    assert kept.vertices[:, 1].max() < 1.0  # the speck at y = 2 is gone
    assert kept.area == pytest.approx(body.area + leg.area)
    colours = {tuple(c) for c in np.asarray(kept.visual.vertex_colors)[:, :3]}
    assert colours == {(255, 0, 0), (0, 255, 0)}  # colours stayed with their vertices
    assert len(drop_small_components(mesh, 0.2).faces) == len(body.faces)
    assert drop_small_components(mesh, 0.0) is mesh


def test_smoothing_keeps_volume_and_removes_staircase():
    # A binary occupancy grid gives the blocky staircase surface that smoothing is for.
    occupancy = lambda p: (p.norm(dim=-1) < 0.6).float()  # noqa: E731
    mesh = extract_from_function(occupancy, resolution=24, level=0.5, inside="above")
    exact_area = 4 * math.pi * 0.36

    def radial_error(m: trimesh.Trimesh) -> float:
        return float(np.abs(np.linalg.norm(m.vertices, axis=1) - np.linalg.norm(m.vertices, axis=1).mean()).mean())

    taubin = smooth(mesh, "taubin", 10)
    laplacian = smooth(mesh, "laplacian", 10)
    for smoothed in (taubin, laplacian):
        assert smoothed.volume == pytest.approx(mesh.volume, rel=0.02)
        assert radial_error(smoothed) < 0.8 * radial_error(mesh)
    assert abs(taubin.area - exact_area) <= abs(mesh.area - exact_area) + 1e-3
    assert np.array_equal(taubin.faces, mesh.faces) and not np.shares_memory(taubin.vertices, mesh.vertices)


def test_decimate_meets_budget_and_keeps_shape():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.7)
    small = decimate(mesh, 500)
    assert 0 < len(small.faces) <= 500
    assert small.volume == pytest.approx(mesh.volume, rel=0.05)
    assert len(decimate(mesh, 10**6).faces) == len(mesh.faces)


def test_normalise_to_box():
    mesh = trimesh.creation.box(extents=[4.0, 2.0, 1.0])
    mesh.apply_translation([10, -3, 2])
    out = normalise_to_box(mesh)
    np.testing.assert_allclose(out.bounds, [[-1, -0.5, -0.25], [1, 0.5, 0.25]], atol=1e-9)
    assert np.allclose(mesh.bounds[0], [8, -4, 1.5])  # input untouched


def test_vertex_colours_follow_the_colour_function():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.9)
    colour = lambda p: (p + 1) / 2  # noqa: E731
    coloured = colour_vertices(mesh, colour, chunk=17)
    expected = np.rint((mesh.vertices + 1) / 2 * 255)
    np.testing.assert_array_equal(coloured.visual.vertex_colors[:, :3], expected.astype(np.uint8))
    assert (coloured.visual.vertex_colors[:, 3] == 255).all()
    # numpy return values and out-of-range colours are accepted and clipped
    np.testing.assert_allclose(query_colours(lambda p: p.numpy() * 3, np.array([[0.5, -1, 0.1]])), [[1, 0, 0.3]])


def test_cleanup_pipeline():
    mesh = two_spheres()
    out = cleanup(mesh, CleanupConfig(keep_components=1, smoothing="taubin", smoothing_iterations=2,
                                      face_budget=400, normalise=True))
    assert len(out.faces) <= 400 and len(out.split(only_watertight=False)) == 1
    assert np.abs(out.bounds).max() == pytest.approx(1.0)
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    assert len(cleanup(empty).faces) == 0
