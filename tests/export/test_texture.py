"""UV rasterisation against a brute-force reference, and baked textures against the colour field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from unflat.export.texture import bake_texture, dilate, rasterise_uv, unwrap_uv


def brute_force_coverage(uv: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """Face id per texel (-1 = empty) by testing every texel centre against every triangle."""
    out = np.full((size, size), -1)
    for row in range(size):
        for col in range(size):
            p = np.array([(col + 0.5) / size, 1 - (row + 0.5) / size])
            for f, (a, b, c) in enumerate(uv[faces]):
                m = np.array([b - a, c - a]).T
                if abs(np.linalg.det(m)) < 1e-12:
                    continue
                w1, w2 = np.linalg.solve(m, p - a)
                if min(w1, w2, 1 - w1 - w2) >= -1e-9:
                    out[row, col] = f
    return out


def test_rasterise_uv_matches_brute_force():
    rng = np.random.default_rng(0)
    uv = rng.uniform(0.05, 0.95, size=(9, 2))
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    size = 24
    face_ids, bary, texels = rasterise_uv(uv, faces, size, chunk=50)  # small chunks exercise the batching
    ours = np.full((size, size), -1)
    ours[texels[:, 0], texels[:, 1]] = face_ids
    reference = brute_force_coverage(uv, faces, size)
    # Overlapping triangles: both give the last triangle that covers a texel.
    assert (ours == reference).mean() > 0.995  # texel centres exactly on an edge may differ by rounding
    # Barycentric weights reproduce the texel centre.
    centres = np.stack([(texels[:, 1] + 0.5) / size, 1 - (texels[:, 0] + 0.5) / size], axis=1)
    np.testing.assert_allclose(np.einsum("tk,tkd->td", bary, uv[faces[face_ids]]), centres, atol=1e-9)


def test_unwrap_keeps_geometry_and_gives_uvs_in_unit_square():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    unwrapped = unwrap_uv(mesh)
    assert len(unwrapped.faces) == len(mesh.faces) and len(unwrapped.vertices) >= len(mesh.vertices)
    uv = unwrapped.visual.uv
    assert uv.shape == (len(unwrapped.vertices), 2) and uv.min() >= 0 and uv.max() <= 1
    np.testing.assert_allclose(np.sort(unwrapped.triangles.reshape(-1, 9), axis=0),
                               np.sort(mesh.triangles.reshape(-1, 9), axis=0))


def test_baked_texture_reproduces_the_colour_field():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    colour = lambda p: (p / 0.8 + 1) / 2  # noqa: E731 (a smooth field: texel error is quantisation only)
    baked = bake_texture(mesh, colour, texture_size=256)
    image = np.asarray(baked.visual.material.baseColorTexture).astype(np.float64) / 255
    assert image.shape == (256, 256, 3)
    # Random surface points: look the colour up at their UV and compare with the field.
    rng = np.random.default_rng(1)
    faces = rng.integers(0, len(baked.faces), 500)
    w = rng.dirichlet(np.ones(3), 500)
    points = np.einsum("tk,tkd->td", w, baked.vertices[baked.faces[faces]])
    uv = np.einsum("tk,tkd->td", w, baked.visual.uv[baked.faces[faces]])
    rows = np.clip(((1 - uv[:, 1]) * 256).astype(int), 0, 255)
    cols = np.clip((uv[:, 0] * 256).astype(int), 0, 255)
    error = np.abs(image[rows, cols] - colour(torch.from_numpy(points)).numpy())
    assert np.median(error) < 0.02 and np.percentile(error, 95) < 0.06


def test_dilate_fills_neighbours_only():
    image = np.zeros((5, 5, 3))
    filled = np.zeros((5, 5), dtype=bool)
    image[2, 2] = 1.0
    filled[2, 2] = True
    grown = dilate(image, filled, 1)
    assert (grown[1:4, 1:4] == 1.0).all() and grown[0].sum() == 0


def test_bake_queries_colours_on_the_given_device():
    mesh = trimesh.creation.box()
    seen = []

    def colour(points: torch.Tensor) -> torch.Tensor:
        seen.append(points.device.type)
        return torch.ones_like(points) * 0.5

    baked = bake_texture(mesh, colour, texture_size=32, device="cpu")
    assert set(seen) == {"cpu"}
    assert np.asarray(baked.visual.material.baseColorTexture)[..., 0].max() == 128
    with pytest.raises(ValueError):
        unwrap_uv(trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)))
