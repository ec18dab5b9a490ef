"""3DGP's knowledge distillation: the discriminator also predicts a frozen classifier's features.

A second head on the discriminator regresses the features that a pretrained classifier (ResNet-50 in
the paper) gives the *real* image; the regression loss trains the discriminator only. It transfers the
classifier's knowledge into D without constraining D's architecture, so it combines with patch-wise
training and the RGB-D input. The teacher's features of each dataset image are computed once and
cached (`unflat.data.depth_cache`), which keeps the overhead to the extra head.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def distillation_loss(pred: Tensor, target: Tensor, sample_weights: Tensor | None = None,
                      kind: Literal["l2", "kl"] = "l2") -> Tensor:
    """Mean over the batch of the distance between predicted and teacher features.

    pred, target: [B,D].  sample_weights: [B] (e.g. patch scales normalised to mean 1) or None.
    kind: ``l2`` = Euclidean distance ||pred - target|| (not squared, as in public 3DGP);
    ``kl`` = KL(softmax(target) || softmax(pred)).
    """
    if kind == "l2":
        distances = (pred.float() - target.float()).norm(dim=1)
    elif kind == "kl":
        distances = F.kl_div(pred.float().log_softmax(1), target.float().softmax(1), reduction="none").sum(1)
    else:
        raise ValueError(f"unknown distillation loss '{kind}'")
    if sample_weights is not None:
        distances = distances * sample_weights
    return distances.mean()


def patch_sample_weights(scales: Tensor | None, power: float = 1.0) -> Tensor | None:
    """Weights [B] proportional to patch scale^power, mean 1: a small patch says less about the whole
    image's features, so its distillation error counts less (public 3DGP ``compute_sample_weights``)."""
    if scales is None:
        return None
    raw = scales.float() ** power
    return raw / (raw.mean() + 1e-8)


class FeatureTeacher(nn.Module):
    """A frozen feature network for distillation: images [B,3,H,W] in [-1,1] -> features [B,D].

    ``input_range`` says what ``net`` expects: "imagenet" (ImageNet mean/std normalised, e.g. ResNet-50),
    "unit" ([0,1], e.g. unflat's domain backbone) or "signed" ([-1,1]). Images are resized to
    ``input_size`` first (None = as given). ``identity`` names the network and its weights (keys caches).
    """

    def __init__(self, net: nn.Module, feature_dim: int, identity: str, input_size: int | None = 224,
                 input_range: Literal["imagenet", "unit", "signed"] = "imagenet") -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.feature_dim, self.identity = feature_dim, identity
        self.input_size, self.input_range = input_size, input_range

    def train(self, mode: bool = True) -> "FeatureTeacher":
        return super().train(False)  # always frozen: BatchNorm statistics must not move

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = images.to(self.device, torch.float32)
        if self.input_range == "imagenet":
            x = ((x + 1) / 2 - x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        elif self.input_range == "unit":
            x = (x + 1) / 2
        if self.input_size is not None and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True)
        feats = self.net(x)
        return feats.flatten(1).float()
