"""Shared test fixtures: tiny datasets with exact ground truth, made in milliseconds without a renderer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
torch.set_num_threads(min(2, torch.get_num_threads()))


def write_sphere_dataset(
    out: Path,
    num_shapes: int = 8,
    views_per_shape: int = 1,
    resolution: int = 16,
    num_classes: int = 2,
    with_depth: bool = True,
    seed: int = 0,
    grey: bool = False,
) -> Path:
    """Spheres of random radius/colour (``grey``: one grey) seen from random orbit cameras, ray-traced analytically.

    Images, masks and depth are exact, so tests can check renderers and losses against them.
    """
    from unflat.cameras import Cameras
    from unflat.data.format import DatasetWriter

    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    names = [f"class{i}" for i in range(num_classes)]
    with DatasetWriter(out, resolution, names, kind="test-spheres", with_masks=True, with_depth=with_depth,
                       views_per_shape=views_per_shape) as writer:
        for shape in range(num_shapes):
            radius = float(rng.uniform(0.4, 0.9))
            colour = rng.uniform(0.2, 1.0, 3)
            colour = np.full(3, 0.7) if grey else colour
            cams = Cameras.sample_orbit(views_per_shape, g, elevation_range=(-30, 60), radius=2.5, fov_deg=40)
            origins, dirs = cams.rays(resolution, resolution)
            # |o + t d|^2 = r^2  ->  t^2 + 2 (o.d) t + |o|^2 - r^2 = 0
            b = (origins * dirs).sum(-1)
            c = (origins * origins).sum(-1) - radius**2
            disc = b * b - c
            hit = disc > 0
            t = -b - torch.sqrt(disc.clamp_min(0))
            points = origins + t[..., None] * dirs
            normal = torch.nn.functional.normalize(points, dim=-1)
            shade = (normal @ torch.tensor([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5])).clamp_min(0) * 0.7 + 0.3
            for v in range(views_per_shape):
                rgb = np.ones((resolution * resolution, 3))
                h = hit[v].numpy()
                rgb[h] = shade[v][h].numpy()[:, None] * colour
                z_cam = (t[v] * (dirs[v] @ cams.cam2world[v, :3, 2])).numpy()
                writer.add(
                    image=(rgb.reshape(resolution, resolution, 3) * 255).round().astype(np.uint8),
                    camera=cams[v],
                    class_id=shape % num_classes,
                    shape_id=shape,
                    mask=h.reshape(resolution, resolution).astype(np.float32),
                    depth=np.where(h, z_cam, 0).reshape(resolution, resolution) if with_depth else None,
                )
    return out


ELLIPSOID_AXES = [(a, b, c) for a in (0.25, 0.55) for b in (0.25, 0.55) for c in (0.25, 0.55)]
"""Semi-axes (x, y, z) of the 8 shapes of ``write_ellipsoid_dataset``: every combination of 0.25 and 0.55."""


def write_ellipsoid_dataset(out: Path, views_per_shape: int = 6, resolution: int = 32, seed: int = 0, fov_deg: float = 25.0,
                            axes: list[tuple[float, float, float]] | None = None) -> Path:
    """8 axis-aligned ellipsoids (``ELLIPSOID_AXES``), each its own colour, seen from random orbit cameras
    (azimuths spread evenly from 30 degrees, elevation 10-40), ray-traced analytically: images, masks and depth are exact. Shape k has
    shape_id k; ``ellipsoid_points`` samples its exact surface for Chamfer distances."""
    from unflat.cameras import Cameras
    from unflat.data.format import DatasetWriter

    axes = ELLIPSOID_AXES if axes is None else axes
    g = torch.Generator().manual_seed(seed)
    colours = np.array([[0.9, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.3, 0.9], [0.9, 0.8, 0.1],
                        [0.8, 0.2, 0.8], [0.1, 0.8, 0.8], [0.95, 0.55, 0.1], [0.45, 0.3, 0.2]])
    light = torch.tensor([0.3, 0.8, 0.5]) / float(np.linalg.norm([0.3, 0.8, 0.5]))
    with DatasetWriter(out, resolution, ["ellipsoid"], kind="test-ellipsoids", with_masks=True, with_depth=True,
                       views_per_shape=views_per_shape) as writer:
        for shape, axis in enumerate(axes):
            a = torch.tensor(axis, dtype=torch.float32)
            # azimuths spread around the shape, view 0 at 25-35 degrees: away from the diagonals, where an
            # ellipsoid long in x and one long in z have mirror-image silhouettes
            azimuth = 30 + 360 / views_per_shape * torch.arange(views_per_shape) + (torch.rand(views_per_shape, generator=g) - 0.5) * 10
            elevation = 10 + 30 * torch.rand(views_per_shape, generator=g)
            cams = Cameras.from_orbit(azimuth, elevation, torch.full((views_per_shape,), 2.5), fov_deg)
            origins, dirs = cams.rays(resolution, resolution)
            o, d = origins / a, dirs / a
            qa, qb, qc = (d * d).sum(-1), 2 * (o * d).sum(-1), (o * o).sum(-1) - 1
            disc = qb * qb - 4 * qa * qc
            hit = disc > 0
            t = (-qb - torch.sqrt(disc.clamp_min(0))) / (2 * qa)
            points = origins + t[..., None] * dirs
            normal = torch.nn.functional.normalize(points / a**2, dim=-1)
            shade = (normal @ light).clamp_min(0) * 0.6 + 0.4
            for v in range(views_per_shape):
                rgb = np.ones((resolution * resolution, 3))
                h = hit[v].numpy()
                rgb[h] = shade[v][h].numpy()[:, None] * colours[shape % len(colours)]
                z_cam = (t[v] * (dirs[v] @ cams.cam2world[v, :3, 2])).numpy()
                writer.add(
                    image=(rgb.reshape(resolution, resolution, 3) * 255).round().astype(np.uint8),
                    camera=cams[v], class_id=0, shape_id=shape,
                    mask=h.reshape(resolution, resolution).astype(np.float32),
                    depth=np.where(h, z_cam, 0).reshape(resolution, resolution),
                )
    return out


def train_tiny_runs(root: Path, runs: dict[str, tuple[str, Path]]) -> None:
    """Train 1-step tiny runs on CPU with one thread: ``runs`` maps a run folder under ``root`` to (method, data)."""
    from dataclasses import replace

    from unflat.methods.registry import get_method
    from unflat.runs import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for folder, (name, data) in runs.items():
            spec = get_method(name)
            train(spec, replace(spec.config("tiny"), data=data, out=root / folder, device="cpu", max_steps=1,
                                tensorboard=False, sample_every=0))
    finally:
        torch.set_num_threads(threads)


def ellipsoid_points(axis: tuple[float, float, float], count: int = 2000, seed: int = 0) -> torch.Tensor:
    """[count,3] points on the surface of the ellipsoid with semi-axes ``axis`` (area-biased only mildly)."""
    g = torch.Generator().manual_seed(seed)
    unit = torch.nn.functional.normalize(torch.randn(count, 3, generator=g), dim=-1)
    return unit * torch.tensor(axis, dtype=torch.float32)


@pytest.fixture
def one_thread():
    """One torch thread for the test: these networks and images are tiny, one thread is fastest, and on a busy
    machine it avoids OpenMP threads spinning against each other (measured: 0.1 s vs 5 s per step).
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def sphere_dataset(tmp_path: Path) -> Path:
    """8 shapes x 1 view, 16x16, 2 classes, with masks and depth."""
    return write_sphere_dataset(tmp_path / "spheres")


@pytest.fixture
def multiview_sphere_dataset(tmp_path: Path) -> Path:
    """6 shapes x 4 views, 16x16, 2 classes."""
    return write_sphere_dataset(tmp_path / "spheres_mv", num_shapes=6, views_per_shape=4)


def assert_resume_matches_straight(spec, base_cfg, tmp_path: Path, steps: int = 2) -> Path:
    """Train ``steps`` straight and ``steps // 2`` + resume to ``steps`` through the engine; every network
    tensor and the method's extra state must be equal bitwise. Returns the resumed run's directory."""
    from dataclasses import replace

    from unflat.engine import checkpoint as ckpt
    from unflat.runs import resume, train

    train(spec, replace(base_cfg, out=tmp_path / "straight", max_steps=steps))
    train(spec, replace(base_cfg, out=tmp_path / "split", max_steps=steps // 2))
    resume(tmp_path / "split", {"max_steps": steps})
    a = ckpt.load_checkpoint(tmp_path / "straight")["method_state"]
    b = ckpt.load_checkpoint(tmp_path / "split")["method_state"]
    for net in a["networks"]:
        for key in a["networks"][net]:
            assert torch.equal(a["networks"][net][key], b["networks"][net][key]), (net, key)
    assert a["extra"] == b["extra"]
    return tmp_path / "split"
