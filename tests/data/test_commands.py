"""`unflat dataset synth | render` end to end at tiny sizes, and the dataset validator on broken cameras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from unflat.data.commands import RenderMeshesConfig, SynthConfig, run_render_meshes, run_synth
from unflat.data.format import DatasetError, open_dataset
from unflat.errors import ConfigError


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    return run_synth(SynthConfig(out=out, category=("chair", "mug"), num_shapes=3, views_per_shape=2, resolution=32,
                                 workers=1, seed=5))


def test_synth_end_to_end(synth_dataset: Path) -> None:
    dataset = open_dataset(synth_dataset, verify_hashes=True)
    info = dataset.info
    assert (info.num_images, info.num_shapes, info.views_per_shape, info.resolution) == (12, 6, 2, 32)
    assert info.class_names == ("chair", "mug") and info.has_masks and info.has_depth and info.has_meshes
    assert dataset.labels.tolist() == [0] * 6 + [1] * 6
    assert [len(g) for g in dataset.views_of_shape()] == [2] * 6
    for shape_id in range(6):
        mesh = trimesh.load(dataset.mesh_path(shape_id), force="mesh")
        assert len(mesh.faces) > 0 and np.linalg.norm(mesh.vertices, axis=1).max() <= 1 + 1e-5
    # Every view shows the object; depth is positive exactly where something was drawn.
    masks = dataset.masks.astype(np.float32) / 255
    depth = dataset.depth.astype(np.float32)
    assert (masks.reshape(12, -1).sum(1) > 20).all()
    assert ((depth > 0) == (masks > 0)).all()
    radius = 3.0
    assert depth[depth > 0].min() > radius - 1 - 0.02 and depth.max() < radius + 1 + 0.02
    # Cameras: on the configured sphere, inside the elevation range, looking at the origin.
    az, el, r = dataset.cameras.to_orbit()
    assert torch.allclose(r, torch.full_like(r, radius), atol=1e-4)
    assert el.min() >= -30 - 1e-3 and el.max() <= 60 + 1e-3
    uv, _ = dataset.cameras.project(torch.zeros(12, 1, 3))
    assert torch.allclose(uv, torch.full_like(uv, 0.5), atol=1e-5)
    # The ground-truth mesh projects onto the rendered mask.
    mesh = trimesh.load(dataset.mesh_path(0), force="mesh")
    points = torch.from_numpy(trimesh.sample.sample_surface(mesh, 500, seed=0)[0]).float()
    index = int(np.flatnonzero(dataset.shape_ids == 0)[0])
    uv, _ = dataset.cameras[index].project(points[None])
    pixels = (uv[0] * 32).long().clamp(0, 31)
    assert (masks[index][pixels[:, 1], pixels[:, 0]] > 0).mean() > 0.98  # soft edges: any coverage


def test_synth_is_deterministic_whatever_the_worker_count(synth_dataset: Path, tmp_path: Path) -> None:
    again = run_synth(SynthConfig(out=tmp_path / "again", category=("chair", "mug"), num_shapes=3, views_per_shape=2,
                                  resolution=32, workers=2, seed=5))
    for name in ("images.npy", "masks.npy", "depth.npy", "labels.npy", "shape_ids.npy"):
        assert np.array_equal(np.load(synth_dataset / name), np.load(again / name)), name
    assert (synth_dataset / "cameras.json").read_text() == (again / "cameras.json").read_text()


def test_synth_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--category"):
        SynthConfig(out=tmp_path, category=("spaceship",)).validate()
    with pytest.raises(ConfigError, match="--elevation-range"):
        SynthConfig(out=tmp_path, elevation_range=(60, -30)).validate()


def _copy_dataset(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_validator_rejects_broken_cameras_json_naming_the_field(synth_dataset: Path, tmp_path: Path) -> None:
    broken = _copy_dataset(synth_dataset, tmp_path / "broken")
    payload = json.loads((broken / "cameras.json").read_text())
    del payload["frames"][3]["intrinsics"]
    (broken / "cameras.json").write_text(json.dumps(payload))
    with pytest.raises(DatasetError, match=r"frames\[3\].*'intrinsics'"):
        open_dataset(broken)
    payload = json.loads((synth_dataset / "cameras.json").read_text())
    payload["frames"][1]["cam2world"][0][0] = 5.0  # not a rotation
    (broken / "cameras.json").write_text(json.dumps(payload))
    with pytest.raises(DatasetError, match=r"frames\[1\]"):
        open_dataset(broken)
    payload["frames"] = payload["frames"][:-1]
    (broken / "cameras.json").write_text(json.dumps(payload))
    with pytest.raises(DatasetError, match="11 frames"):
        open_dataset(broken)


def test_render_meshes_classes_normalisation_and_broken_files(tmp_path: Path) -> None:
    root = tmp_path / "meshes"
    (root / "boxes" / "nested").mkdir(parents=True)
    (root / "balls").mkdir()
    trimesh.creation.box(extents=(4.0, 2.0, 1.0)).apply_translation((10, 0, 0)).export(root / "boxes" / "a.obj")
    trimesh.creation.box(extents=(1.0, 3.0, 1.0)).export(root / "boxes" / "nested" / "b.stl")
    trimesh.creation.icosphere(2, radius=7.0).export(root / "balls" / "c.ply")
    (root / "balls" / "garbage.obj").write_text("this is not\nan obj file f 1 2\n")
    (root / "balls" / "empty.glb").write_bytes(b"")
    (root / "balls" / "cloud.ply").write_bytes(trimesh.PointCloud(np.random.default_rng(0).random((20, 3))).export(file_type="ply"))
    (root / "boxes" / "broken.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    out = run_render_meshes(RenderMeshesConfig(meshes=root, out=tmp_path / "ds", resolution=32, views_per_shape=2,
                                               workers=1, lvp=True))
    dataset = open_dataset(out, verify_hashes=True)
    assert dataset.info.class_names == ("balls", "boxes")
    assert dataset.info.num_shapes == 3 and dataset.info.num_images == 6
    assert sorted(np.bincount(dataset.labels).tolist()) == [2, 4]
    for shape_id in np.unique(dataset.shape_ids):
        mesh = trimesh.load(dataset.mesh_path(int(shape_id)), force="mesh")
        assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(mesh.bounds.mean(0), 0, atol=1e-5)
    az, el, _ = dataset.cameras.to_orbit()
    assert az.abs().max() <= 60 + 1e-3 and el.min() >= 15 - 1e-3 and el.max() <= 60 + 1e-3
    skipped = json.loads((out / "manifest.json").read_text())["source"]["skipped"]
    assert sum(skipped.values()) == 4, skipped
    assert skipped.get("empty file") == 1


def test_render_meshes_draws_a_textured_glb_in_its_texture_colours(tmp_path: Path) -> None:
    """A user's textured GLB (glTF PBR material, UVs) goes through the default moderngl renderer in its colours:
    left half of the texture red, right half blue, mapped onto a sphere by longitude."""
    from PIL import Image

    sphere = trimesh.creation.icosphere(3, radius=1.0)
    direction = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    uv = np.stack([0.5 + np.arctan2(direction[:, 0], direction[:, 2]) / (2 * np.pi), 0.5 + np.arcsin(direction[:, 1]) / np.pi], 1)
    image = np.zeros((32, 64, 3), np.uint8)
    image[:, :32], image[:, 32:] = (220, 30, 30), (30, 30, 220)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(image), metallicFactor=0.0, roughnessFactor=1.0)
    sphere.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    (tmp_path / "meshes").mkdir()
    sphere.export(tmp_path / "meshes" / "ball.glb")
    out = run_render_meshes(RenderMeshesConfig(meshes=tmp_path / "meshes", out=tmp_path / "ds", resolution=32,
                                               views_per_shape=1, azimuth_range=(0.0, 0.0), elevation_range=(0.0, 0.0),
                                               workers=1, lighting="headlight"))
    dataset = open_dataset(out)
    picture = dataset.images[0].astype(float)  # camera on +Z: +X (u > 0.5, blue) on the image's right
    covered = dataset.masks[0] > 127
    left, right = picture[:, :14][covered[:, :14]], picture[:, 18:][covered[:, 18:]]
    assert left[:, 0].mean() > left[:, 2].mean() + 60 and right[:, 2].mean() > right[:, 0].mean() + 60
