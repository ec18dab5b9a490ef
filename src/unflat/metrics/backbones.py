"""Feature extractors for distribution metrics: unflat's domain backbone (offline default) and the
standard Inception-v3 (when its weights are on this machine).

Both satisfy ``unflat.metrics.distribution.FeatureExtractor``: ``name``, ``weights_hash``,
``kind`` and ``__call__(images [B,3,H,W] in [0,1]) -> [B,D]``, plus ``logits`` for the
Inception Score.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from unflat import pretrained
from unflat.metrics.distribution import DOMAIN_BACKBONE, STANDARD_INCEPTION
from unflat.nets.domain_backbone import DomainBackbone, load_domain_backbone
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


class InceptionV3Extractor:
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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images: [B,3,H,W] in [0,1] -> (features [B,2048], logits [B,1000])."""
        return self.model(images.to(self.device))

    def __call__(self, images: Tensor) -> Tensor:
        return self.features_and_logits(images)[0]

    def logits(self, images: Tensor) -> Tensor:
        return self.features_and_logits(images)[1]


def resolve_feature_extractor(backbone: str | Path, device: str | torch.device = "cpu"):
    """``"inception"`` -> the standard Inception-v3 (local weights required); a path to a
    ``.safetensors`` domain backbone -> that backbone."""
    if str(backbone).lower() in ("inception", "inception-v3", "inception_v3"):
        return InceptionV3Extractor(device=device)
    return DomainBackboneExtractor.load(backbone, device)
