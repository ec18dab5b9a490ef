"""Paired metrics against skimage and hand-computed cases; LPIPS against a second implementation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from unflat import pretrained
from unflat.metrics.lpips import LPIPS_SCALE, LPIPS_SHIFT, PerceptualDistance
from unflat.metrics.paired import depth_accuracy, mse, psnr, silhouette_iou, ssim


def _images(seed: int, b: int = 2, c: int = 3, h: int = 24, w: int = 20) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_ssim_matches_skimage():
    x = _images(0)
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    ours = ssim(x, y)
    for i in range(x.shape[0]):
        ref = structural_similarity(
            x[i].permute(1, 2, 0).double().numpy(),
            y[i].permute(1, 2, 0).double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=2,
        )
        assert float(ours[i]) == pytest.approx(ref, abs=1e-9)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))


def test_mse_psnr_match_skimage():
    x, y = _images(2), _images(3)
    assert torch.allclose(mse(x, y), ((x - y) ** 2).flatten(1).mean(1).double())
    ref = peak_signal_noise_ratio(x[0].double().numpy(), y[0].double().numpy(), data_range=1.0)
    assert float(psnr(x, y)[0]) == pytest.approx(ref, rel=1e-9)


def test_silhouette_iou_hand_computed():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.zeros(2, 1, 4, 4)
    a[0, :, :2, :] = 1  # 8 pixels
    b[0, :, 1:3, :] = 0.9  # 8 pixels, 4 shared
    assert silhouette_iou(a, b).tolist() == pytest.approx([4 / 12, 1.0])


def test_depth_accuracy_scale_shift_invariant_and_hand_computed():
    g = torch.Generator().manual_seed(4)
    depth = torch.rand(1, 1, 8, 8, generator=g) + 1
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    # an affine copy (what a relative-depth estimator would give) scores 0; background is ignored
    affine = 3 * depth + 7
    affine[mask == 0] = -100
    assert float(depth_accuracy(depth, affine, mask)) == pytest.approx(0, abs=1e-12)
    # hand computation: two pixels, standardised to (-1, 1) and (1, -1): MSE 4
    p = torch.tensor([[[[1.0, 2.0]]]])
    r = torch.tensor([[[[5.0, 1.0]]]])
    assert float(depth_accuracy(p, r)) == pytest.approx(4.0)


# ---- LPIPS -----------------------------------------------------------------------------------------
def _write_fake_lpips_weights(folder, seed: int = 0):
    """Random AlexNet weights in torchvision's file layout and random lpips linear layers."""
    g = torch.Generator().manual_seed(seed)
    features = pretrained.alexnet_features()
    state = {f"features.{k}": torch.randn(v.shape, generator=g) * 0.05 for k, v in features.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(2, 2)  # a full classifier file carries more than features
    torch.save(state, folder / "alexnet-owt-7be5be79.pth")
    channels = (64, 192, 384, 256, 256)
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(channels)}
    torch.save(lin, folder / "alex.pth")
    return state, lin


def _reference_lpips(x, y, state, lin):
    """LPIPS written out layer by layer with torch.nn.functional from the raw state dict."""

    def scale(t):
        return (t * 2 - 1 - torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)) / torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)

    def taps(t):
        s = lambda i: (state[f"features.{i}.weight"], state[f"features.{i}.bias"])  # noqa: E731
        out = []
        t = F.relu(F.conv2d(t, *s(0), stride=4, padding=2)); out.append(t)  # noqa: E702
        t = F.relu(F.conv2d(F.max_pool2d(t, 3, 2), *s(3), padding=2)); out.append(t)  # noqa: E702
        t = F.relu(F.conv2d(F.max_pool2d(t, 3, 2), *s(6), padding=1)); out.append(t)  # noqa: E702
        t = F.relu(F.conv2d(t, *s(8), padding=1)); out.append(t)  # noqa: E702
        t = F.relu(F.conv2d(t, *s(10), padding=1)); out.append(t)  # noqa: E702
        return out

    total = 0
    for k, (a, b) in enumerate(zip(taps(scale(x)), taps(scale(y)))):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        total = total + ((a - b) ** 2 * lin[f"lin{k}.model.1.weight"]).sum(1).mean((1, 2))
    return total


def test_lpips_matches_second_implementation(tmp_path, monkeypatch):
    monkeypatch.setenv("UNFLAT_WEIGHTS_DIR", str(tmp_path))
    state, lin = _write_fake_lpips_weights(tmp_path)
    metric = PerceptualDistance.lpips("alex")
    x, y = _images(5, h=64, w=64), _images(6, h=64, w=64)
    ours = metric(x, y)
    ref = _reference_lpips(x, y, state, lin)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7)
    assert torch.allclose(metric(x, x), torch.zeros(2), atol=1e-7)
    assert metric.name == "lpips-alex-v0.1" and len(metric.weights_hash) == 16


def test_lpips_missing_weights_names_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("UNFLAT_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    torch.save({f"lin{k}.model.1.weight": torch.ones(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))}, tmp_path / "alex.pth")
    with pytest.raises(pretrained.MissingWeightsError) as error:
        PerceptualDistance.lpips("alex")
    message = str(error.value)
    assert "alexnet-owt-7be5be79.pth" in message and str(tmp_path / "th" / "hub" / "checkpoints") in message
    assert "\n" not in message
