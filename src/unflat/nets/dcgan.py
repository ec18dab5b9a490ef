"""DCGAN discriminator (Radford et al. 2016) with spectral normalisation (Miyato et al. 2018).

Stride-2 4x4 convolutions halve the image down to 4x4, LeakyReLU(0.2) between them, and a final 4x4
convolution gives one logit. With spectral norm on every layer there is no BatchNorm (SN-DCGAN).
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


def _maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    return _spectral_norm(module) if enabled else module


class DCGANDiscriminator(nn.Module):
    """images: [B,3,S,S] in [-1,1] -> logits [B].

    resolution: S, a power of two >= 8 (IG-GAN: 128).
    channels: width of the first layer; doubled per halving up to ``max_channels`` (DCGAN: 64 ... 512).
    """

    def __init__(self, resolution: int = 128, channels: int = 64, max_channels: int = 512,
                 spectral_norm: bool = True, in_channels: int = 3) -> None:
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {resolution}")
        self.resolution = resolution
        levels = int(math.log2(resolution // 4))  # S -> S/2 -> ... -> 4
        layers: list[nn.Module] = []
        width_in = in_channels
        for i in range(levels):
            width = min(channels * 2**i, max_channels)
            layers += [_maybe_sn(nn.Conv2d(width_in, width, 4, 2, 1), spectral_norm), nn.LeakyReLU(0.2, inplace=True)]
            width_in = width
        layers.append(_maybe_sn(nn.Conv2d(width_in, 1, 4, 1, 0), spectral_norm))
        self.net = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # DCGAN initialisation; spectral norm rescales the weights anyway.
                weight = module.parametrizations.weight.original if spectral_norm else module.weight
                nn.init.normal_(weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, images: Tensor) -> Tensor:
        """images: [B,3,S,S] -> logits [B]."""
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            raise ValueError(f"discriminator expects {self.resolution}x{self.resolution} images, got {tuple(images.shape)}")
        return self.net(images).flatten()
