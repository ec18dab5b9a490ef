"""`unflat dataset synth --wild`: renders, validates, loads; masks are the object; cameras frame what was drawn;
deterministic in the seed; backgrounds come from packaged photos or procedural textures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from scipy import ndimage
from scipy.spatial import Delaunay

from unflat.data.backgrounds import PROCEDURAL, find_photos, procedural_background
from unflat.data.commands import SynthConfig, run_synth
from unflat.data.format import open_dataset
from unflat.data.loader import iterate_batches

RES = 48


def _wild(out: Path, **overrides) -> Path:
    fields = dict(out=out, category=("chair", "car"), num_shapes=2, views_per_shape=2, resolution=RES, workers=1,
                  seed=3, wild=True, elevation_range=(10.0, 50.0))
    fields.update(overrides)
    return run_synth(SynthConfig(**fields))


@pytest.fixture(scope="module")
def wild_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wild(tmp_path_factory.mktemp("wild") / "ds")


def _projected_hull(dataset, index: int) -> Delaunay:
    """The convex hull (in pixels) of the ground-truth mesh projected with the stored camera."""
    mesh = trimesh.load(dataset.mesh_path(int(dataset.shape_ids[index])), force="mesh")
    uv, _ = dataset.cameras[index].project(torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32)[None])
    return Delaunay(uv[0].numpy() * RES)


def test_wild_synth_renders_validates_and_loads(wild_dataset: Path) -> None:
    dataset = open_dataset(wild_dataset, verify_hashes=True)
    assert dataset.info.background == "wild" and dataset.manifest["background"] == "wild"
    assert dataset.info.has_masks and dataset.info.has_depth and dataset.info.has_meshes
    assert dataset.info.num_images == 8
    batch = next(iterate_batches(wild_dataset, 0, 1, 4, seed=0, device=torch.device("cpu")))
    assert batch.images.shape == (4, 3, RES, RES) and batch.masks.shape == (4, 1, RES, RES)
    # the background is not white: pixels outside the object vary like a scene
    masks = dataset.masks.astype(np.float32) / 255
    background = dataset.images[masks < 0.01]
    assert background.std() > 10 and (background < 250).mean() > 0.5


def test_masks_cover_the_object_and_not_the_background(wild_dataset: Path) -> None:
    dataset = open_dataset(wild_dataset)
    masks = dataset.masks.astype(np.float32) / 255
    ys, xs = np.mgrid[0:RES, 0:RES] + 0.5
    centres = np.stack([xs.ravel(), ys.ravel()], 1)
    for i in range(len(dataset)):
        hull = _projected_hull(dataset, i)
        inside = (hull.find_simplex(centres) >= 0).reshape(RES, RES)
        near = ndimage.binary_dilation(inside, iterations=1)
        assert masks[i][~near].max() == 0, "mask outside the projected object"  # never on the background
        assert masks[i][inside].mean() > 0.3, "the object's pixels are not masked"
        # the mesh's vertices project onto the mask (one pixel of slack for edges; sub-pixel legs may vanish)
        mesh_mask = ndimage.binary_dilation(masks[i] > 0, iterations=1)
        px = np.clip(hull.points.astype(int), 0, RES - 1)
        assert mesh_mask[px[:, 1], px[:, 0]].mean() > 0.97
        assert ((dataset.depth[i] > 0) == (masks[i] > 0)).all()


def test_framing_varies_through_the_intrinsics_and_keeps_the_object_in_frame(wild_dataset: Path) -> None:
    dataset = open_dataset(wild_dataset)
    intr = dataset.cameras.intrinsics
    assert intr[:, 0].std() > 0 and (intr[:, 2:] - 0.5).abs().max() > 0.01  # zoom and offset both vary
    assert torch.allclose(intr[:, 0], intr[:, 1])
    for i in range(len(dataset)):
        points = _projected_hull(dataset, i).points / RES
        assert points.min() >= 0.02 - 1e-4 and points.max() <= 0.98 + 1e-4  # --wild margin
    manifest = json.loads((wild_dataset / "manifest.json").read_text())
    assert sum(manifest["source"]["wild"]["backgrounds_used"].values()) == 8


def _digest(root: Path) -> str:
    return hashlib.sha256(b"".join((root / n).read_bytes() for n in ("images.npy", "masks.npy", "cameras.json"))).hexdigest()


def test_wild_synth_is_deterministic_for_a_seed(wild_dataset: Path, tmp_path: Path) -> None:
    assert _digest(_wild(tmp_path / "again", workers=2)) == _digest(wild_dataset)
    assert _digest(_wild(tmp_path / "other", seed=4)) != _digest(wild_dataset)


def test_occluders_hide_part_of_the_object_and_leave_the_mask(wild_dataset: Path, tmp_path: Path) -> None:
    occluded = open_dataset(_wild(tmp_path / "occ", wild_occluders=1.0, wild_shadows=False))
    clean = open_dataset(wild_dataset)
    assert torch.equal(occluded.cameras.intrinsics, clean.cameras.intrinsics)  # same framing, same silhouettes
    hidden = clean.masks.astype(np.int64) - occluded.masks.astype(np.int64)
    assert (hidden >= 0).all()  # an occluder only removes object pixels from the mask
    assert (hidden.reshape(len(clean), -1).max(1) > 128).mean() >= 0.75  # most views lose a visible part


def test_procedural_backgrounds_need_nothing_and_follow_the_seed() -> None:
    for family in PROCEDURAL:
        a = procedural_background(np.random.default_rng(1), 32, family)
        b = procedural_background(np.random.default_rng(1), 32, family)
        assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
        assert a.astype(float).std() > 1, family


def test_photo_backgrounds_come_from_installed_packages(tmp_path: Path) -> None:
    photos = find_photos()
    if not photos:
        pytest.skip("no package with sample photos (scikit-image, scikit-learn, matplotlib) is installed")
    assert all(Path(p.path).is_file() for p in photos)
    root = _wild(tmp_path / "photos", category=("mug",), num_shapes=1, wild_backgrounds="photos")
    wild = json.loads((root / "manifest.json").read_text())["source"]["wild"]
    assert wild["backgrounds_used"] == {"photo": 2} and wild["photos"] == [p.name for p in photos]
