"""Feature extractors for distribution metrics: unflat's domain backbone (offline default) and the
standard Inception-v3 (when its weights are on this machine).

Both satisfy ``unflat.metrics.distribution.FeatureExtractor``: ``name``, ``weights_hash``,
``kind`` and ``__call__(images [B,3,H,W] in [0,1]) -> [B,D]``, plus ``logits`` for the
Inception Score.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat import pretrained
from unflat.metrics.distribution import DOMAIN_BACKBONE, STANDARD_INCEPTION
from unflat.nets.domain_backbone import DomainBackbone, load_domain_backbone


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
    """Standard ImageNet Inception-v3: 2048-d pool features and 1000-way logits at 299x299.

    Needs torchvision (for the definition) and its weights file in a local cache; see
    ``unflat.pretrained.load_inception_v3``.
    """

    kind = STANDARD_INCEPTION

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu", model: nn.Module | None = None) -> None:
        self.model = (model if model is not None else pretrained.load_inception_v3(weights)).to(device).eval()
        self.name = "inception-v3-torchvision-imagenet"
        self.weights_hash = pretrained.hash_module(self.model)
        self._pool: Tensor | None = None
        self.model.avgpool.register_forward_hook(lambda _m, _i, out: setattr(self, "_pool", out.flatten(1)))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _run(self, images: Tensor) -> Tensor:
        x = F.interpolate(images.to(self.device), size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        # torchvision's Google weights expect inputs in [-1,1] (transform_input is off here)
        return self.model(x * 2 - 1)

    @torch.no_grad()
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        logits = self._run(images)
        if isinstance(logits, tuple):  # aux logits in train mode
            logits = logits[0]
        return self._pool, logits

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
