"""Domain backbone: learns a separable toy task through the engine, saves/loads with its hash."""

import json

import numpy as np
import pytest
import torch

from unflat.cameras import Cameras
from unflat.metrics.backbones import DomainBackboneExtractor
from unflat.metrics.distribution import DOMAIN_BACKBONE, FeatureExtractor
from unflat.nets.domain_backbone import (
    DomainBackbone,
    DomainBackboneConfig,
    azimuth_bins,
    elevation_bins,
    load_domain_backbone,
    save_domain_backbone,
)
from unflat.methods.backbone import train_backbone_from_dataset

TINY = dict(resolution=16, widths=(8, 16), azimuth_bins=4, elevation_bins=2)


def _toy_images(n: int, seed: int = 0):
    """Class 0: dark images, class 1: bright; azimuth bin drawn as a bright quadrant."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    azimuth = rng.uniform(-180, 180, n)
    elevation = rng.uniform(-80, 80, n)
    images = np.where(labels[:, None, None, None] == 1, 170, 40) + rng.integers(0, 20, (n, 16, 16, 3))
    quadrant = azimuth_bins(torch.tensor(azimuth), 4).numpy()
    for i, q in enumerate(quadrant):
        r, c = divmod(int(q), 2)
        images[i, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8, 0] = 255
    return images.astype(np.uint8), labels, azimuth, elevation


def test_bins():
    assert azimuth_bins(torch.tensor([-180.0, -1.0, 0.0, 179.9, 180.0, 540.0]), 4).tolist() == [0, 1, 2, 3, 0, 0]
    assert elevation_bins(torch.tensor([-90.0, -0.1, 0.0, 90.0]), 2).tolist() == [0, 0, 1, 1]


def test_features_shape_and_batch_independence():
    model = DomainBackbone(DomainBackboneConfig(**TINY, num_classes=3)).eval()
    x = torch.rand(4, 3, 24, 24)  # any input size is resized to the network's resolution
    feats = model(x)
    assert feats.shape == (4, 16)
    assert torch.allclose(model(x[:1]), feats[:1], atol=1e-6)  # GroupNorm: no batch coupling
    assert [f.shape[1] for f in model.stage_features(x)] == [8, 16]


def _toy_dataset(root, n: int, seed: int = 0, views_per_shape: int = 2):
    from unflat.data.format import DatasetWriter

    images, labels, az, el = _toy_images(n, seed=seed)
    cameras = Cameras.from_orbit(torch.tensor(az, dtype=torch.float32), torch.tensor(el, dtype=torch.float32))
    with DatasetWriter(root, resolution=16, class_names=["dark", "bright"], kind="synth", with_masks=False,
                       views_per_shape=views_per_shape) as writer:
        for i in range(n):
            writer.add(images[i], cameras[i], class_id=int(labels[i]), shape_id=i // views_per_shape)
    return root


def test_training_through_the_engine_learns_toy_task(tmp_path):
    data = _toy_dataset(tmp_path / "data", 200, views_per_shape=1)
    model, report, path = train_backbone_from_dataset(data, tmp_path / "bb", steps=60, batch_size=32, resolution=16,
                                                      run_dir=tmp_path / "run", widths=(8, 16), azimuth_bins=4,
                                                      elevation_bins=2)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert path == tmp_path / "bb.safetensors" and not model.training
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert report.category_accuracy > 0.9
    assert report.azimuth_accuracy > 0.5  # chance is 0.25
    assert report.num_held_out == 20 and report.num_train == 180 and report.steps == 60


def test_save_load_roundtrip_and_extractor(tmp_path):
    model = DomainBackbone(DomainBackboneConfig(**TINY, num_classes=2)).eval()
    path = save_domain_backbone(model, tmp_path / "backbone")
    assert path.suffix == ".safetensors"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["weights_hash"] == model.weights_hash and sidecar["kind"] == DOMAIN_BACKBONE
    loaded, info = load_domain_backbone(path)
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(loaded(x), model(x)) and info["name"] == model.name
    extractor = DomainBackboneExtractor.load(path)
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.weights_hash == model.weights_hash and extractor.kind == DOMAIN_BACKBONE
    feats, logits = extractor.features_and_logits(x)
    assert feats.shape == (3, 16) and logits.shape == (3, 2)


def test_missing_backbone_file_says_how_to_make_one(tmp_path):
    from unflat.pretrained import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="unflat train backbone"):
        load_domain_backbone(tmp_path / "none.safetensors")


def test_train_backbone_from_dataset(tmp_path):
    data = _toy_dataset(tmp_path / "data", 40, seed=1)
    model, report, path = train_backbone_from_dataset(data, tmp_path / "bb.safetensors", steps=3, batch_size=8, resolution=16)
    assert path.is_file() and report.num_held_out % 2 == 0  # whole shapes (2 views each) held out
    info = load_domain_backbone(path)[1]
    assert info["source"]["class_names"] == ["dark", "bright"] and info["source"]["trained_by"] == "unflat train backbone"
    assert not (data / "backbone.safetensors").exists()  # the dataset folder is left as it was
