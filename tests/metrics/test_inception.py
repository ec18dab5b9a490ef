"""Inception-v3 without torchvision: torchvision's layout and parameter names, strict loading of a
weights file saved under torchvision's name, and the extractor built on it."""

import pytest
import torch
from torch import nn

from unflat import pretrained
from unflat.metrics.backbones import InceptionV3Extractor
from unflat.metrics.distribution import STANDARD_INCEPTION
from unflat.nets.inception import InceptionV3

TORCHVISION_FILE = "inception_v3_google-0cc3c7bd.pth"
# torchvision's published figure for inception_v3 (Inception_V3_Weights.IMAGENET1K_V1.meta["num_params"]),
# which counts the auxiliary classifier: an independent check of the layout.
TORCHVISION_NUM_PARAMS = 27_161_264
# a few entries of torchvision's state dict, with their shapes
TORCHVISION_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6b.branch7x7dbl_5.conv.weight": (192, 128, 1, 7),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "AuxLogits.conv1.conv.weight": (768, 128, 5, 5),
    "AuxLogits.fc.weight": (1000, 768),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}
SMALL = 80  # the smallest inputs the network accepts are 75x75; the 299 resize is tested once


@pytest.fixture(scope="module")
def network() -> InceptionV3:
    """A random network whose batch norms hold non-trivial running statistics (calibrated on
    noise), so features are O(1) and every tensor of the file matters."""
    torch.manual_seed(0)
    model = InceptionV3()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one pass sets the running stats
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.1, 0.1)
    with torch.no_grad():
        model.train().pool_features(torch.randn(4, 3, SMALL, SMALL))
    return model.eval().requires_grad_(False)


def _save_as_torchvision(state_dict, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("UNFLAT_WEIGHTS_DIR", raising=False)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(state_dict, hub / TORCHVISION_FILE)
    return hub / TORCHVISION_FILE


def test_layout_matches_torchvision(network):
    assert sum(p.numel() for p in network.parameters()) == TORCHVISION_NUM_PARAMS
    state = network.state_dict()
    for key, shape in TORCHVISION_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert all(network.Conv2d_1a_3x3.bn.eps == m.eps == 1e-3 for m in network.modules() if isinstance(m, nn.BatchNorm2d))


def test_loads_torchvision_named_file_and_reproduces_outputs(network, tmp_path, monkeypatch):
    _save_as_torchvision(network.state_dict(), tmp_path, monkeypatch)
    extractor = InceptionV3Extractor()  # found through $TORCH_HOME/hub/checkpoints
    loaded = extractor.model
    assert extractor.kind == STANDARD_INCEPTION
    assert extractor.weights_hash == pretrained.hash_module(network)  # the hash comes from the file's weights
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, SMALL, SMALL) * 2 - 1  # already preprocessed: in [-1,1]
    reference = network.pool_features(x)
    assert reference.std() > 1e-2  # the calibrated network is not degenerate
    assert torch.equal(loaded.pool_features(x), reference)
    torch.testing.assert_close(loaded.fc(reference), network.fc(reference), rtol=0, atol=0)


def test_extractor_features_and_logits_at_299(network):
    extractor = InceptionV3Extractor(model=network)
    images = torch.rand(2, 3, 48, 48)
    features, logits = extractor.features_and_logits(images)
    assert features.shape == (2, 2048) and logits.shape == (2, 1000)
    assert torch.isfinite(features).all() and (features >= 0).all()  # average of ReLU outputs
    torch.testing.assert_close(logits, network.fc(features))  # dropout is off in eval
    assert not torch.allclose(features[0], features[1])


def test_renamed_key_is_named_in_one_line(network, tmp_path, monkeypatch):
    state = dict(network.state_dict())
    state["Mixed_6c.branch1x1.conv.weights"] = state.pop("Mixed_6c.branch1x1.conv.weight")
    _save_as_torchvision(state, tmp_path, monkeypatch)
    with pytest.raises(ValueError) as error:
        pretrained.load_inception_v3()
    message = str(error.value)
    assert "Mixed_6c.branch1x1.conv.weight'" in message and "Mixed_6c.branch1x1.conv.weights" in message
    assert TORCHVISION_FILE in message and "\n" not in message


def test_missing_file_names_torchvision_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("UNFLAT_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(pretrained.MissingWeightsError, match=TORCHVISION_FILE):
        InceptionV3Extractor()
