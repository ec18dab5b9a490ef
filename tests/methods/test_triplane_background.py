"""Tri-plane methods (mvtriplane, 3dgp) on wild data: the background follows the data's kind, a learned far
background fills what the volume leaves clear, and exported meshes keep the object, not a background sheet."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from unflat.config import replace_fields
from unflat.data.format import open_dataset
from unflat.geometry.foreground import object_density
from unflat.geometry.marching_cubes import grid_points
from unflat.methods.base import TrainContext
from unflat.methods.registry import get_method
from unflat.methods.triplane_gan import sample_view_cameras

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def _method(name: str, data: Path, data_background: str, monkeypatch, tmp_path: Path,
            overrides: dict[str, object] | None = None):
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))
    spec = get_method(name)
    torch.manual_seed(0)
    cfg = replace_fields(spec.config("tiny"), {"data": data, "device": "cpu", **(overrides or {})})
    info = replace(open_dataset(data).info, background=data_background)
    return spec.method_cls(cfg, info, TrainContext(CPU))


@pytest.mark.parametrize("name", ["mvtriplane", "3dgp"])
def test_background_choice_follows_the_data(name, sphere_dataset, monkeypatch, tmp_path) -> None:
    white = _method(name, sphere_dataset, "white", monkeypatch, tmp_path)
    wild = _method(name, sphere_dataset, "wild", monkeypatch, tmp_path)
    assert white.background == "white" and white.G.far_background is None and not white.object_only_meshes
    assert wild.background == "learned" and wild.G.far_background is not None and wild.object_only_meshes
    assert any(k.startswith("far_background.") for k in wild.G_ema.state_dict())  # saved, EMA'd with G
    # an explicit choice wins over the data; saved runs' white_background keeps their old behaviour
    assert _method(name, sphere_dataset, "wild", monkeypatch, tmp_path, {"generator.background": "white"}).background == "white"
    assert _method(name, sphere_dataset, "white", monkeypatch, tmp_path, {"generator.background": "learned"}).background == "learned"
    assert _method(name, sphere_dataset, "wild", monkeypatch, tmp_path, {"generator.white_background": False}).background == "none"


def test_learned_background_fills_exactly_what_the_volume_leaves_clear(sphere_dataset, monkeypatch, tmp_path) -> None:
    method = _method("mvtriplane", sphere_dataset, "wild", monkeypatch, tmp_path)
    G = method.G

    def ball(planes, points):  # a planted field: a grey ball of radius 0.5, empty elsewhere
        density = (points.norm(dim=-1, keepdim=True) < 0.5).float() * 20.0
        return torch.full((*points.shape[:-1], G.decoder.out_features), 0.25), density

    monkeypatch.setattr(G, "query", ball)
    cams = sample_view_cameras(2, 1, 3.0, 40.0, generator=torch.Generator().manual_seed(0))
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1))
    ws = G.map(z, G.class_onehot(torch.tensor([0, 1]), 2, CPU))
    with torch.no_grad():
        out = G.render(G.planes(ws, "const"), ws, cams, perturb=False, noise_mode="const")
        res = G.neural_resolution
        _, dirs = cams.rays(res, res)
        far = G.far_background(dirs, ws[:, 0]).transpose(1, 2).reshape(2, -1, res, res)
    opacity = out.opacity
    assert float(opacity.min()) < 1e-3 and float(opacity.max()) > 0.99  # both: clear rays and the ball
    expected = (0.25 * opacity + (1 - opacity) * far) * 2 - 1
    torch.testing.assert_close(out.features, expected, atol=1e-4, rtol=0)
    assert float((far[0] - far[1]).abs().mean()) > 1e-3  # each latent has its own scene


def _planted(points: torch.Tensor) -> torch.Tensor:
    """Density [N]: an object (ball r=0.45 at the centre) plus a background sheet behind it and corner blobs."""
    x, y, z = points.unbind(-1)
    ball = points.norm(dim=-1) < 0.45
    sheet = (z > -0.95) & (z < -0.75) & (x.abs() < 0.8) & (y.abs() < 0.8)
    corners = (x.abs() > 0.85) & (y.abs() > 0.85) & (z.abs() > 0.85)
    return (ball | sheet | corners).float() * 50.0


def test_object_density_clears_a_planted_background() -> None:
    r = 48
    grid = _planted(grid_points(r, (-1.0, 1.0)).reshape(-1, 3)).reshape(r, r, r)
    kept = object_density(grid, level=10.0, half=1.0, radius=1.0, gap=1)
    points = grid_points(r, (-1.0, 1.0))
    occupied = points[kept > 10.0]
    assert len(occupied) > 0 and float(occupied.norm(dim=-1).max()) < 0.5  # the ball, and only the ball
    assert int((kept > 10.0).sum()) == int(((grid > 10.0) & (points.norm(dim=-1) < 0.45)).sum())


@pytest.mark.parametrize("name", ["mvtriplane", "3dgp"])
def test_exported_mesh_of_a_wild_run_has_no_background_sheet(name, sphere_dataset, monkeypatch, tmp_path) -> None:
    def planted_query(planes, points):
        density = _planted(points)[..., None]
        return torch.full((*points.shape[:-1], G.decoder.out_features), 0.5), density

    wild = _method(name, sphere_dataset, "wild", monkeypatch, tmp_path, {"export.mesh_resolution": 40, "export.mesh_density": 10.0})
    G = wild.G_ema
    monkeypatch.setattr(G, "query", planted_query)  # the generator's field, replaced by a planted density
    planes, _ = wild.planes_for(torch.zeros(1, G.z_dim), torch.zeros(1, dtype=torch.long))
    mesh = wild.mesh_from_planes(planes)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert len(mesh.faces) > 0 and radii.max() < 0.5 and radii.min() > 0.35  # the ball's surface only
    # the same field exported without the object-only step keeps the sheet: the test sees the difference
    wild.cfg.export.mesh_object_only = "off"
    everything = wild.mesh_from_planes(planes)
    assert np.linalg.norm(everything.vertices, axis=1).max() > 0.8


def test_resume_refuses_data_of_another_background_kind(sphere_dataset) -> None:
    from unflat.engine.trainer import _check_same_data
    from unflat.errors import UserError

    info = open_dataset(sphere_dataset).info
    recorded = {"resolution": info.resolution, "class_names": list(info.class_names), "has_masks": True,
                "has_depth": True, "background": "white"}
    assert _check_same_data(recorded, info, sphere_dataset) == []
    with pytest.raises(UserError, match="background white -> wild"):
        _check_same_data(recorded, replace(info, background="wild"), sphere_dataset)
    del recorded["background"]  # checkpoints written before the field: nothing to compare
    assert _check_same_data(recorded, replace(info, background="wild"), sphere_dataset) == []


@pytest.mark.parametrize("name", ["mvtriplane", "3dgp"])
def test_density_blob_follows_the_background_and_older_runs_keep_none(name, sphere_dataset, monkeypatch, tmp_path) -> None:
    from unflat.config import config_from_dict, to_plain

    assert _method(name, sphere_dataset, "white", monkeypatch, tmp_path).G.density_blob == 0.0
    auto = _method(name, sphere_dataset, "wild", monkeypatch, tmp_path).G
    assert auto.density_blob == pytest.approx(5.0 * max(1.0, 0.5 / auto.density_blob_radius))
    assert _method(name, sphere_dataset, "wild", monkeypatch, tmp_path, {"generator.density_blob": 0.0}).G.density_blob == 0.0
    assert _method(name, sphere_dataset, "white", monkeypatch, tmp_path, {"generator.density_blob": 2.0}).G.density_blob == 2.0
    wide = _method(name, sphere_dataset, "wild", monkeypatch, tmp_path, {"generator.background_frequencies": 8})
    assert wide.G.far_background.frequencies == 8 and wide.G.far_background.embed.weight.shape[1] == 3 + 6 * 8
    spec = get_method(name)
    saved = to_plain(spec.config("tiny"))
    del saved["generator"]["density_blob"]  # a run saved before the field: trained without the blob
    assert config_from_dict(spec.config_cls, saved).generator.density_blob == 0.0


# 3dgp's tiny preset samples 4+4 points over rays of length 3, too sparse to find a blob; 16+16 here
DENSE = {"rendering.num_coarse": 16, "rendering.num_fine": 16}


@pytest.mark.parametrize("name,cameras", [("mvtriplane", {}),
                                          ("3dgp", DENSE),
                                          ("3dgp", {**DENSE, "cameras.radius": 2.0, "cameras.fov": 27.5})])  # its paper's cameras
def test_density_blob_makes_a_fresh_generator_render_an_object_at_the_centre(name, cameras, sphere_dataset, monkeypatch,
                                                                             tmp_path) -> None:
    """On wild data the learned background could take the whole image; the blob gives the volume an opaque object
    in the middle of the frame from the first step, and clear rays at the frame's corners (where the background
    shows). The same generator without the blob fills the frame with fog (opacity 0.5-0.9 at the corners)."""
    def centre_and_corners(method) -> tuple[float, float]:
        G = method.G
        fov = method.cfg.cameras.fov  # the method's own distance and fov: the blob's "auto" radius follows them
        cams = sample_view_cameras(4, 1, method.cfg.cameras.radius, fov, generator=torch.Generator().manual_seed(0))
        z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out = G(z, G.class_onehot(torch.tensor([0, 1, 0, 1]), 4, CPU), cams, perturb=False, noise_mode="const")
        alpha = out.opacity[:, 0]  # [B,H,W]
        r = alpha.shape[-1]
        centre = alpha[:, r // 2 - 1:r // 2 + 1, r // 2 - 1:r // 2 + 1].mean()
        corners = torch.stack([alpha[:, 0, 0], alpha[:, 0, -1], alpha[:, -1, 0], alpha[:, -1, -1]]).mean()
        return float(centre), float(corners)

    torch.manual_seed(0)
    with_blob = centre_and_corners(_method(name, sphere_dataset, "wild", monkeypatch, tmp_path, cameras))
    without = centre_and_corners(_method(name, sphere_dataset, "wild", monkeypatch, tmp_path,
                                         {"generator.density_blob": 0.0, **cameras}))
    assert with_blob[0] > 0.65 and with_blob[1] < 0.1  # an object in the middle (8 px: the centre pixels are off-axis), clear rays around it
    assert without[1] > with_blob[1] + 0.3  # without it a fresh decoder's fog covers the frame, corners too
