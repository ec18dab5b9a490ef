"""The auto iso-level of tri-plane meshes: the surface is where the rendering says the object is, not the
invisible fog a fixed density level finds around it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from unflat.config import replace_fields
from unflat.data.format import open_dataset
from unflat.geometry.iso_level import ray_max_density, silhouette_level
from unflat.geometry.marching_cubes import grid_points
from unflat.methods.base import TrainContext
from unflat.methods.registry import get_method

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
BALL, FOG_IN, FOG_OUT = 0.45, 0.70, 0.71


def _foggy_ball(points: torch.Tensor) -> torch.Tensor:
    """Density [...]: a solid ball (r 0.45, density 300) inside a thin shell of fog (0.70 < r < 0.71, density 11:
    above EG3D's level 10, but a ray crossing it twice keeps most of its light)."""
    r = points.norm(dim=-1)
    return torch.where(r < BALL, 300.0, 0.0) + torch.where((r > FOG_IN) & (r < FOG_OUT), 11.0, 0.0)


def _method(name, data, monkeypatch, tmp_path, overrides: dict[str, object]):
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))
    spec = get_method(name)
    torch.manual_seed(0)
    cfg = replace_fields(spec.config("tiny"), {"data": data, "device": "cpu", **overrides})
    method = spec.method_cls(cfg, open_dataset(data).info, TrainContext(CPU))
    G = method.G_ema

    def planted(planes, points):  # the generator's field, replaced by the foggy ball (grey)
        return torch.full((*points.shape[:-1], G.decoder.out_features), 0.5), _foggy_ball(points)[..., None]

    monkeypatch.setattr(G, "query", planted)
    return method


@pytest.mark.parametrize("name", ["mvtriplane", "3dgp"])
def test_auto_level_recovers_the_ball_where_the_fixed_level_takes_the_fog(name, sphere_dataset, monkeypatch, tmp_path):
    # enough ray samples and grid points to resolve the 0.01-thick fog (the tiny preset's 8 + 8 would not)
    method = _method(name, sphere_dataset, monkeypatch, tmp_path,
                     {"export.mesh_resolution": 96, "export.mesh_min_component": 0.0,
                      "rendering.num_coarse": 64, "rendering.num_fine": 32})
    planes, _ = method.planes_for(torch.zeros(1, method.G_ema.z_dim), torch.zeros(1, dtype=torch.long))
    auto = method.mesh_from_planes(planes)
    radii = np.linalg.norm(auto.vertices, axis=1)
    assert len(auto.faces) > 0 and radii.max() < BALL + 0.05 and radii.min() > BALL - 0.06, (radii.min(), radii.max())
    assert 11 < auto.metadata["iso_level"] < 300 and auto.metadata["silhouette_iou"] > 0.7
    # the same field at EG3D's fixed level 10: marching cubes finds the fog shell
    method.cfg.export.mesh_density = 10.0
    fixed = method.mesh_from_planes(planes)
    assert np.linalg.norm(fixed.vertices, axis=1).max() > FOG_IN
    assert fixed.metadata["iso_level"] == 10.0 and math.isnan(fixed.metadata["silhouette_iou"])


def test_silhouette_level_picks_the_middle_of_the_plateau():
    # rays: 30 through the core (max 300, opaque), 50 through fog only (max 12, clear), 20 empty
    max_density = torch.cat([torch.full((30,), 300.0), torch.full((50,), 12.0), torch.zeros(20)])
    opacity = torch.cat([torch.ones(30), torch.full((50,), 0.3), torch.zeros(20)])
    choice = silhouette_level(max_density, opacity)
    assert choice.iou == 1.0 and 12 < choice.level < 300
    # a level matching the fog's silhouette would score 30/80
    assert float(choice.ious.min()) == pytest.approx(30 / 80)
    # nothing opaque to match: no choice (the method falls back to a fixed level)
    assert silhouette_level(max_density, torch.zeros(100)) is None


def test_ray_max_density_matches_the_planted_field():
    r = 33
    radius = grid_points(r, (-1.0, 1.0)).norm(dim=-1)
    grid = torch.where(radius < 0.45, 300.0, 0.0) + torch.where((radius > 0.55) & (radius < 0.8), 12.0, 0.0)
    origins = torch.tensor([[0.0, 0.0, -3.0], [0.0, 0.6, -3.0], [0.9, 0.9, -3.0]])
    dirs = torch.tensor([[0.0, 0.0, 1.0]] * 3)
    top = ray_max_density(grid, 1.0, origins, dirs, 1.0, 5.0)
    assert top[0] == pytest.approx(300.0) and top[1] == pytest.approx(12.0) and top[2] == 0.0
    # an asymmetric field: the axes are the module's (x, y, z), not grid_sample's (z, y, x)
    grid = torch.zeros(r, r, r)
    grid[r - 1, r // 2, :] = 5.0  # a line at x = 1, y = 0, along z
    hit = ray_max_density(grid, 1.0, torch.tensor([[1.0, 0.0, -3.0], [0.0, 0.0, -3.0]]), dirs[:2], 1.0, 5.0)
    assert hit[0] == pytest.approx(5.0) and hit[1] == 0.0


def test_export_records_the_chosen_level(sphere_dataset, monkeypatch, tmp_path):
    from unflat.export.summary import level_summary

    method = _method("mvtriplane", sphere_dataset, monkeypatch, tmp_path,
                     {"export.mesh_resolution": 96, "rendering.num_coarse": 64, "rendering.num_fine": 32})
    paths = method.export(tmp_path / "out", 2, 0, None, ("ply",))
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert len(paths) == 2 and record["settings"]["level"] == "auto" and record["settings"]["resolution"] == 96
    assert [m["mesh"] for m in record["meshes"]] == [p.stem for p in paths]
    assert all(11 < m["iso_level"] < 300 and m["silhouette_iou"] > 0.7 for m in record["meshes"])
    assert level_summary(tmp_path / "out").startswith("iso-level auto: ")
