"""Procedural categories: deterministic, normalised, made of watertight parts, and varied."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from unflat.data.synth import CATEGORIES, make_shape


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance (an independent reference, not unflat.metrics)."""
    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def _surface(mesh: trimesh.Trimesh, n: int, seed: int) -> np.ndarray:
    return trimesh.sample.sample_surface(mesh, n, seed=seed)[0]


def test_six_categories_registered() -> None:
    assert {"chair", "table", "sofa", "mug", "car", "lamp"} <= set(CATEGORIES)
    with pytest.raises(ValueError, match="unknown category"):
        make_shape("spaceship", 0)


@pytest.mark.parametrize("category", list(CATEGORIES))
def test_deterministic_normalised_watertight_parts(category: str) -> None:
    a, b, c = make_shape(category, 7), make_shape(category, 7), make_shape(category, 8)
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and np.array_equal(a.mesh.faces, b.mesh.faces)
    assert np.array_equal(a.mesh.visual.vertex_colors, b.mesh.visual.vertex_colors)
    assert a.params == b.params
    assert a.mesh.vertices.shape != c.mesh.vertices.shape or not np.allclose(a.mesh.vertices, c.mesh.vertices)
    # Unit-sphere normalisation, bounding box centred at the origin.
    radii = np.linalg.norm(a.mesh.vertices, axis=1)
    assert radii.max() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(a.mesh.bounds.mean(0), 0, atol=1e-6)
    # A union of watertight, outward-oriented parts; per-part colours on the combined mesh.
    for part in a.parts:
        assert part.mesh.is_watertight, f"{category}/{part.name} is not watertight"
        assert part.mesh.volume > 0, f"{category}/{part.name} is inside out"
    assert len(a.mesh.vertices) == sum(len(p.mesh.vertices) for p in a.parts)
    assert a.mesh.visual.kind == "vertex"
    colours = {tuple(c) for c in np.asarray(a.mesh.visual.vertex_colors)[:, :3]}
    assert len(colours) >= 2


def test_plus_y_is_up() -> None:
    """Things stand on their base: a table's top is its highest part, a chair's seat is above its legs."""
    for seed in range(4):
        table = make_shape("table", seed)
        top = next(p for p in table.parts if p.name == "top")
        assert top.mesh.bounds[1, 1] == pytest.approx(table.mesh.bounds[1, 1])
        chair = make_shape("chair", seed)
        seat = next(p for p in chair.parts if p.name == "seat")
        assert seat.mesh.bounds[0, 1] > chair.mesh.bounds[0, 1] + 0.2


def test_mug_is_hollow_with_a_handle() -> None:
    for seed in range(4):
        mug = make_shape("mug", seed)
        body = next(p for p in mug.parts if p.name == "body").mesh
        # A solid frustum with the same outline would hold far more volume than the hollow body.
        h = body.bounds[1, 1] - body.bounds[0, 1]
        r = (body.bounds[1, 0] - body.bounds[0, 0]) / 2
        assert body.volume < 0.5 * np.pi * r * r * h
        handle = next(p for p in mug.parts if p.name == "handle").mesh
        assert handle.bounds[1, 0] > body.bounds[1, 0] + 0.05  # sticks out to the side


@pytest.mark.parametrize("category", list(CATEGORIES))
def test_instances_vary(category: str) -> None:
    clouds = [_surface(make_shape(category, seed).mesh, 3000, 0) for seed in range(5)]
    pairwise = np.mean([_chamfer(a, b) for a, b in itertools.combinations(clouds, 2)])
    noise = _chamfer(clouds[0], _surface(make_shape(category, 0).mesh, 3000, 1))  # same shape, new samples
    assert pairwise > max(2.0 * noise, 0.03), (pairwise, noise)
