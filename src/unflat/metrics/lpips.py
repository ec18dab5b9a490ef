"""LPIPS (Zhang et al. 2018) without the lpips package at run time, and the same computation on
unflat's domain backbone as an offline fallback.

LPIPS(x, y) = sum_l mean_{h,w} sum_c w_{l,c} (f^l_x / |f^l_x| - f^l_y / |f^l_y|)^2_c, where f^l
are a network's activations at five ReLU layers, |.| is the channel-wise L2 norm and w are the
learned "linear layer" weights (lpips v0.1). With standard weights (AlexNet/VGG16 ImageNet
weights + lpips' linear layers, all from local files via ``unflat.pretrained``) this reproduces
lpips.LPIPS(net=..., version="0.1"). Without them, ``PerceptualDistance.from_domain_backbone`` gives
the same formula on the domain backbone's stages with uniform channel weights; its name says so,
and it is not LPIPS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from unflat import pretrained

# lpips' ScalingLayer constants: inputs in [-1,1] are shifted/scaled to ImageNet-like statistics.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# End index (exclusive) of each slice of torchvision's ``features`` that lpips taps (after a ReLU).
LPIPS_SLICES = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}


def normalize_channels(features: Tensor, eps: float = 1e-10) -> Tensor:
    """Unit L2 norm over channels at every pixel: [B,C,H,W] -> [B,C,H,W] (lpips' normalize_tensor)."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + eps)


class SlicedFeatures(nn.Module):
    """Activations of a Sequential at the ends of consecutive slices: [B,3,H,W] -> list of [B,C_l,H_l,W_l]."""

    def __init__(self, layers: nn.Sequential, slice_ends: Sequence[int]) -> None:
        super().__init__()
        self.layers = layers
        self.slice_ends = tuple(slice_ends)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs, start = [], 0
        for end in self.slice_ends:
            for layer in self.layers[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs


class PerceptualDistance(nn.Module):
    """sum over layers of the spatial mean of channel-weighted squared differences of
    channel-normalised features. Inputs: two image batches [B,3,H,W] in [0,1] -> [B].

    name and weights_hash say what produced the number (e.g. "lpips-alex-v0.1").
    """

    def __init__(
        self,
        stages: Callable[[Tensor], list[Tensor]],
        channel_weights: Sequence[Tensor] | None,
        input_transform: Callable[[Tensor], Tensor],
        name: str,
        weights_hash: str,
    ) -> None:
        super().__init__()
        self.stages = stages
        self.channel_weights = None if channel_weights is None else [w.reshape(1, -1, 1, 1) for w in channel_weights]
        self.input_transform = input_transform
        self.name = name
        self.weights_hash = weights_hash

    @torch.no_grad()
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        feats_x = self.stages(self.input_transform(x))
        feats_y = self.stages(self.input_transform(y))
        total = x.new_zeros(x.shape[0])
        for index, (fx, fy) in enumerate(zip(feats_x, feats_y)):
            diff = (normalize_channels(fx) - normalize_channels(fy)).square()
            if self.channel_weights is None:
                per_pixel = diff.mean(dim=1)  # uniform weights 1/C
            else:
                per_pixel = (diff * self.channel_weights[index].to(diff)).sum(dim=1)
            total = total + per_pixel.mean(dim=(1, 2))
        return total

    # ---- constructors ---------------------------------------------------------------------------
    @staticmethod
    def lpips(
        net: str = "alex",
        backbone_weights: str | Path | None = None,
        linear_weights: str | Path | None = None,
        layers: nn.Sequential | None = None,
    ) -> "PerceptualDistance":
        """LPIPS v0.1 with standard weights from local files (see ``unflat.pretrained``).
        ``layers`` replaces the loaded backbone (tests use a random one)."""
        if net not in LPIPS_SLICES:
            raise ValueError(f"LPIPS network must be 'alex' or 'vgg', got {net!r}")
        lin = pretrained.load_lpips_linear_weights(net, linear_weights)
        if layers is None:
            layers = pretrained.load_alexnet_features(backbone_weights) if net == "alex" else pretrained.load_vgg16_features(backbone_weights)
        stages = SlicedFeatures(layers, LPIPS_SLICES[net]).eval()
        weights_hash = pretrained.hash_state_dict({**layers.state_dict(), **{f"lin{i}": w for i, w in enumerate(lin)}})
        return PerceptualDistance(stages, lin, lpips_input_transform, f"lpips-{net}-v0.1", weights_hash)

    @staticmethod
    def from_domain_backbone(backbone) -> "PerceptualDistance":
        """The LPIPS formula on unflat's domain backbone stages with uniform channel weights (an
        offline stand-in: its name says it is not LPIPS). ``backbone``: a DomainBackbone."""
        return PerceptualDistance(
            backbone.stage_features,
            None,
            lambda images: images,  # the backbone takes [0,1] images itself
            f"perceptual-distance-on-{backbone.name} (domain backbone, not LPIPS)",
            backbone.weights_hash,
        )


def lpips_input_transform(images: Tensor) -> Tensor:
    """[0,1] -> [-1,1] -> lpips' ScalingLayer."""
    shift = images.new_tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
    scale = images.new_tensor(LPIPS_SCALE).view(1, 3, 1, 1)
    return (images * 2 - 1 - shift) / scale
