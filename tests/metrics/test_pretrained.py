"""Local-only weight loading: search order, file formats, hashes and the missing-file message."""

import pytest
import torch
from safetensors.torch import save_file

from unflat import pretrained


def test_load_state_dict_file_safetensors_and_torch(tmp_path):
    state = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4, dtype=torch.int64)}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        loaded = pretrained.load_state_dict_file(tmp_path / name)
        assert set(loaded) == {"a", "b"} and torch.equal(loaded["a"], state["a"])


def test_torch_file_with_code_is_refused(tmp_path):
    import datetime
    import pickle

    torch.save({"x": datetime.timedelta(days=1)}, tmp_path / "evil.pt")  # any non-tensor global
    with pytest.raises(pickle.UnpicklingError):
        pretrained.load_state_dict_file(tmp_path / "evil.pt")


def test_hash_state_dict_content_sensitive():
    a = {"w": torch.zeros(3), "b": torch.ones(2)}
    b = {"b": torch.ones(2), "w": torch.zeros(3)}
    assert pretrained.hash_state_dict(a) == pretrained.hash_state_dict(b)
    c = {"w": torch.zeros(3), "b": torch.tensor([1.0, 1.0001])}
    assert pretrained.hash_state_dict(a) != pretrained.hash_state_dict(c)


def test_search_order_explicit_env_and_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("UNFLAT_WEIGHTS_DIR", raising=False)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    model = pretrained.ResNet50()
    torch.save(model.state_dict(), hub / "resnet50-0676ba61.pth")
    loaded = pretrained.load_resnet50()
    assert pretrained.hash_module(loaded) == pretrained.hash_module(model)
    assert not any(p.requires_grad for p in loaded.parameters())
    features = loaded(torch.rand(1, 3, 64, 64))
    assert features.shape == (1, 2048)
    # an explicit path wins, and a wrong explicit path is reported as such
    torch.save(pretrained.ResNet50().state_dict(), tmp_path / "mine.pt")
    assert pretrained.hash_module(pretrained.load_resnet50(tmp_path / "mine.pt")) != pretrained.hash_module(model)
    with pytest.raises(pretrained.MissingWeightsError, match="given explicitly"):
        pretrained.load_resnet50(tmp_path / "nope.pt")


def test_missing_weights_message_names_expected_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("UNFLAT_WEIGHTS_DIR", str(tmp_path / "mine"))
    for loader, filename in (
        (pretrained.load_vgg16_features, "vgg16-397923af.pth"),
        (pretrained.load_alexnet_features, "alexnet-owt-7be5be79.pth"),
        (pretrained.load_resnet50, "resnet50-11ad3fa6.pth"),
        (pretrained.load_inception_v3, "inception_v3_google-0cc3c7bd.pth"),
    ):
        with pytest.raises(pretrained.MissingWeightsError) as error:
            loader()
        message = str(error.value)
        assert filename in message
        assert str(tmp_path / "th" / "hub" / "checkpoints" / filename) in message
        assert str(tmp_path / "mine" / filename) in message
        assert "--weights" in message and "\n" not in message


def test_mismatched_file_is_reported(tmp_path):
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="does not match"):
        pretrained.load_alexnet_features(tmp_path / "bad.pth")
