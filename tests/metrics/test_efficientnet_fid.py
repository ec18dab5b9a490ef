"""ImageNet EfficientNet-Lite0 as FID/KID feature network (``--backbone efficientnet``): pooled
features and logits against the package's own forward pass (on weights the test writes), the real
shipped weights' predictions through the extractor, and `unflat evaluate --backbone efficientnet`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unflat import cli, pretrained
from unflat.metrics.backbones import EfficientNetLite0Extractor, is_named_backbone, resolve_feature_extractor
from unflat.metrics.distribution import IMAGENET_EFFICIENTNET

needs_package = pytest.mark.skipif(not pretrained.efficientnet_available(),
                                   reason="the efficientnet extra is not installed (pip install 'unflat[efficientnet]')")
pytestmark = [pytest.mark.usefixtures("one_thread"), needs_package]


@pytest.fixture
def random_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = pretrained.efficientnet_lite0_model()
    for name, value in model.state_dict().items():
        if name.endswith("running_var"):
            value.uniform_(0.5, 2.0)
    return model.eval()


def test_features_and_logits_match_the_packages_forward_pass(random_model):
    extractor = EfficientNetLite0Extractor(model=random_model)
    assert extractor.kind == IMAGENET_EFFICIENTNET and len(extractor.weights_hash) > 0
    images = torch.rand(3, 3, 224, 224)
    features, logits = extractor.features_and_logits(images)
    assert features.shape == (3, 1280) and logits.shape == (3, 1000)
    with torch.no_grad():  # the package's own pooling + classifier, on its own input scaling
        reference = random_model((images * 255 - 127) / 128)
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-4)
    # other sizes are resized to 224 first: a 64^2 image and its 224^2 bilinear upsampling give the same features
    small = torch.rand(2, 3, 64, 64)
    big = torch.nn.functional.interpolate(small, size=(224, 224), mode="bilinear", align_corners=False)
    torch.testing.assert_close(extractor(small), extractor(big))
    # features depend on the image
    a, b = extractor(images[:1]), extractor(images[1:2])
    assert float((a - b).norm()) > 0.01 * float(a.norm()) > 0


def test_names_resolve_to_the_shipped_network():
    assert is_named_backbone("efficientnet") and is_named_backbone("EfficientNet-Lite0") and is_named_backbone("inception")
    assert not is_named_backbone("runs/data/backbone.safetensors")
    extractor = resolve_feature_extractor("efficientnet")
    assert isinstance(extractor, EfficientNetLite0Extractor)
    assert extractor.model.model.weights_sha256 == pretrained.EFFICIENTNET_LITE0_SHA256


def test_real_weights_classify_photos_through_the_extractor():
    skimage_data = pytest.importorskip("skimage.data")
    extractor = EfficientNetLite0Extractor()
    photos = [skimage_data.chelsea(), skimage_data.coffee()]
    expected = [{281, 282, 283, 284, 285}, {967, 968, 504}]  # cats; espresso, cup, coffee mug
    for photo, classes in zip(photos, expected):
        x = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        assert int(extractor.logits(x).argmax()) in classes


def test_evaluate_with_efficientnet_features(tmp_path: Path):
    from conftest import write_sphere_dataset

    data = write_sphere_dataset(tmp_path / "data", num_shapes=8)
    run = tmp_path / "mv"
    assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(data), "--out", str(run), "--max-steps", "1",
                     "--no-tensorboard"]) == 0
    out = tmp_path / "metrics.json"
    assert cli.main(["evaluate", str(run), "--backbone", "efficientnet", "--metrics", "fid", "kid", "--num-samples", "8",
                     "--batch-size", "8", "--cache-dir", str(tmp_path / "cache"), "--no-report", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["backbone"]["kind"] == IMAGENET_EFFICIENTNET
    assert results["images"]["backbone_name"] == "efficientnet-lite0-imagenet"
    assert np.isfinite(results["images"]["fid"]) and results["images"]["fid"] > 0
