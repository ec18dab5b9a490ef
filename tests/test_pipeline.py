"""The chain the product promises, end to end through the CLI on tiny presets:
3D generator run -> `dataset from-generator` (posed multi-view images + masks) -> `train progressive`
-> `reconstruct` an image to a textured GLB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image

from unflat import cli
from unflat.data.format import open_dataset
from unflat.runs import load_run


def test_generator_renders_each_latent_from_its_views(sphere_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "gen"
    assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(sphere_dataset), "--out", str(run),
                     "--device", "cpu"]) == 0
    method = load_run(run, "cpu").method
    views = method.sample_cameras(3, 2, torch.Generator().manual_seed(0))
    multi = method.sample(3, seed=5, cameras=views)
    assert multi.images.shape[0] == 6 and multi.masks.shape[0] == 6
    # view 0 of latent i equals a single-view sample of the same latent at the same camera
    single = method.sample(3, seed=5, cameras=views[torch.arange(0, 6, 2)])
    assert torch.allclose(multi.images[0::2], single.images, atol=1e-5)
    assert multi.class_ids.tolist() == single.class_ids.repeat_interleave(2).tolist()


def test_generator_to_dataset_to_reconstruction(sphere_dataset: Path, tmp_path: Path) -> None:
    gen, data, rec, out = tmp_path / "gen", tmp_path / "mv", tmp_path / "rec", tmp_path / "out"
    assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(sphere_dataset), "--out", str(gen),
                     "--device", "cpu"]) == 0
    assert cli.main(["dataset", "from-generator", str(gen), "--num-shapes", "3", "--views-per-shape", "2",
                     "--out", str(data), "--min-mask-fraction", "0", "--max-mask-fraction", "1", "--device", "cpu"]) == 0
    dataset = open_dataset(data, verify_hashes=True)
    assert dataset.info.num_shapes == 3 and dataset.info.views_per_shape == 2 and dataset.info.has_masks
    assert all(len(v) == 2 for v in dataset.views_of_shape())
    assert cli.main(["train", "progressive", "--preset", "tiny", "--data", str(data), "--out", str(rec),
                     "--device", "cpu"]) == 0
    photo = tmp_path / "photo.png"
    Image.fromarray(np.asarray(dataset.images[0])).save(photo)
    assert cli.main(["reconstruct", str(rec), str(photo), "--out", str(out), "--device", "cpu"]) == 0
    glbs = list(out.rglob("*.glb"))
    assert len(glbs) == 1
    mesh = trimesh.load(glbs[0], force="mesh")
    assert len(mesh.faces) > 0 and mesh.visual.kind == "texture"
    assert len(list(out.glob("*.gif"))) == 1  # the turntable, by default

    # meshes only, a smaller turntable on request, and bad sizes are one-line errors
    lean = tmp_path / "lean"
    assert cli.main(["reconstruct", str(rec), str(photo), str(photo), "--out", str(lean), "--no-turntable",
                     "--device", "cpu"]) == 0
    assert len(list(lean.glob("*.glb"))) == 2 and not list(lean.glob("*.gif"))
    assert trimesh.load(lean / "photo-1.glb", force="mesh").visual.kind == "texture"
    assert cli.main(["reconstruct", str(rec), str(photo), "--out", str(lean), "--turntable-frames", "0",
                     "--device", "cpu"]) == 1


def test_iggan_run_makes_a_multiview_dataset(sphere_dataset: Path, tmp_path: Path) -> None:
    run, data = tmp_path / "ig", tmp_path / "mv"
    assert cli.main(["train", "iggan", "--preset", "tiny", "--data", str(sphere_dataset), "--out", str(run),
                     "--device", "cpu"]) == 0
    method = load_run(run, "cpu").method
    cameras = method.sample_cameras(4, seed=1)
    multi = method.sample(2, seed=3, cameras=cameras)
    single = method.sample(2, seed=3, cameras=cameras[torch.tensor([0, 2])])
    assert multi.images.shape[0] == 4
    assert torch.allclose(multi.images[0::2], single.images, atol=1e-5)  # view 0 of shape i = shape i
    assert cli.main(["dataset", "from-generator", str(run), "--num-shapes", "2", "--views-per-shape", "2",
                     "--out", str(data), "--min-mask-fraction", "0", "--max-mask-fraction", "1", "--device", "cpu"]) == 0
    dataset = open_dataset(data, verify_hashes=True)
    assert dataset.info.num_shapes == 2 and dataset.info.views_per_shape == 2
