"""UV rasterisation against a brute-force reference, and baked textures against the colour field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from unflat.export.texture import (
    bake_texture,
    extend_to_gutter,
    grid_atlas_size,
    grid_atlas_uv,
    rasterise_uv,
    unwrap_uv,
    xatlas_uv,
)


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


@pytest.mark.parametrize("method", ["xatlas", "grid"])
def test_unwrap_keeps_geometry_and_gives_uvs_in_unit_square(method):
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    unwrapped = unwrap_uv(mesh, 256, method)
    assert len(unwrapped.faces) == len(mesh.faces) and len(unwrapped.vertices) >= len(mesh.vertices)
    uv = unwrapped.visual.uv
    assert uv.shape == (len(unwrapped.vertices), 2) and uv.min() >= 0 and uv.max() <= 1
    np.testing.assert_allclose(np.sort(unwrapped.triangles.reshape(-1, 9), axis=0),
                               np.sort(mesh.triangles.reshape(-1, 9), axis=0))
    # no two faces overlap in UV space: every covered texel belongs to exactly one face
    face_ids, _, texels = rasterise_uv(uv, unwrapped.faces, 256)
    keys = texels[:, 0] * 256 + texels[:, 1]
    assert len(np.unique(keys)) == len(keys)


def sample_texture_error(baked: trimesh.Trimesh, colour, count: int = 500, seed: int = 1) -> np.ndarray:
    """|texture colour - field colour| at random surface points, looked up by bilinear filtering."""
    image = np.asarray(baked.visual.material.baseColorTexture).astype(np.float64) / 255
    size = image.shape[0]
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, len(baked.faces), count)
    w = rng.dirichlet(np.ones(3), count)
    points = np.einsum("tk,tkd->td", w, baked.vertices[baked.faces[faces]])
    uv = np.einsum("tk,tkd->td", w, baked.visual.uv[baked.faces[faces]])
    x = uv[:, 0] * size - 0.5
    y = (1 - uv[:, 1]) * size - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]

    def texel(r, c):
        return image[np.clip(r, 0, size - 1), np.clip(c, 0, size - 1)]

    looked_up = ((1 - fy) * ((1 - fx) * texel(y0, x0) + fx * texel(y0, x0 + 1))
                 + fy * ((1 - fx) * texel(y0 + 1, x0) + fx * texel(y0 + 1, x0 + 1)))
    return np.abs(looked_up - colour(torch.from_numpy(points)).numpy())


@pytest.mark.parametrize("method", ["xatlas", "grid"])
def test_baked_texture_reproduces_the_colour_field(method):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    smooth = lambda p: (p / 0.8 + 1) / 2  # noqa: E731 (linear: the error is 8-bit quantisation only)
    stripes = lambda p: torch.stack(  # noqa: E731 (varies within a triangle: bounded by texel density)
        [(torch.sin(12 * p[:, 0]) + 1) / 2, (p[:, 1] + 1) / 2, torch.full_like(p[:, 0], 0.3)], -1)
    for colour, median, worst in ((smooth, 0.005, 0.02), (stripes, 0.01, 0.1)):
        baked = bake_texture(mesh, colour, texture_size=256, uv_method=method)
        assert np.asarray(baked.visual.material.baseColorTexture).shape == (256, 256, 3)
        # Bilinear lookups (what a viewer does) never pick up the background or another triangle.
        error = sample_texture_error(baked, colour, count=2000)
        assert np.median(error) < median and error.max() < worst, (np.median(error), error.max())


def test_grid_atlas_scales_past_the_requested_texture_with_a_warning():
    assert grid_atlas_size(2 * 64 * 64, 256) == (256, 4)
    with pytest.warns(UserWarning, match="decimate"):
        assert grid_atlas_size(2 * 100 * 100, 256) == (400, 4)
    mesh = trimesh.creation.icosphere(subdivisions=1)
    vertices, faces, uv = grid_atlas_uv(mesh, 64)
    assert vertices.shape == (3 * len(mesh.faces), 3) and faces.shape == mesh.faces.shape
    np.testing.assert_allclose(vertices[faces], mesh.vertices[mesh.faces])


def test_xatlas_crash_is_an_error_not_a_dead_process():
    # xatlas runs in a child process: a crash (xatlas 0.0.11 segfaults on this regular icosphere)
    # or a refusal becomes a RuntimeError here and this process carries on.
    with pytest.raises(RuntimeError, match="xatlas failed"):
        xatlas_uv(trimesh.Trimesh(np.eye(3), [[0, 1, 7]], process=False, validate=False), 64)
    try:
        vmapping, faces, uv = xatlas_uv(trimesh.creation.icosphere(subdivisions=6), 1024)
    except RuntimeError as error:
        assert "xatlas failed on a mesh of 81920 faces" in str(error)
    else:
        assert faces.shape == (81920, 3)


def test_auto_falls_back_to_the_grid_when_xatlas_fails(monkeypatch):
    import unflat.export.texture as texture

    def failing_xatlas(mesh, texture_size):
        raise RuntimeError("xatlas failed on a mesh of 80 faces (exit status -11)")

    monkeypatch.setattr(texture, "xatlas_uv", failing_xatlas)
    small = trimesh.creation.icosphere(subdivisions=1)
    with pytest.warns(UserWarning, match="grid atlas"):
        unwrapped = unwrap_uv(small, 64, "auto")
    assert len(unwrapped.vertices) == 3 * len(small.faces)
    with pytest.raises(RuntimeError):
        unwrap_uv(small, 64, "xatlas")
    big = trimesh.creation.icosphere(subdivisions=2)
    monkeypatch.setattr(texture, "XATLAS_MAX_FACES", 100)
    assert len(unwrap_uv(big, 64, "auto").vertices) == 3 * len(big.faces)  # too big for xatlas: grid, no warning


def test_gutter_takes_the_nearest_triangle_clamped():
    uv = np.array([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75]])
    faces = np.array([[0, 1, 2]])
    face_ids, bary, texels = rasterise_uv(uv, faces, 16)
    all_ids, all_bary, all_texels = extend_to_gutter(uv, faces, 16, face_ids, texels, bary, gutter=2)
    assert len(all_ids) > len(face_ids) and (all_ids == 0).all()
    assert (all_bary >= 0).all() and np.allclose(all_bary.sum(1), 1)
    distance_to_triangle = np.abs(np.einsum("tk,tkd->td", all_bary, uv[faces[all_ids]])
                                  - np.stack([(all_texels[:, 1] + 0.5) / 16, 1 - (all_texels[:, 0] + 0.5) / 16], 1))
    assert distance_to_triangle.max() <= 2.5 / 16


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
