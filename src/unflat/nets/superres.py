"""EG3D-style 2D super-resolution: volume-rendered feature image -> output-resolution RGB.

A style-modulated StyleGAN2 head: one non-upsampling block at the input resolution, then one 2x
upsampling block per octave up to the output resolution. The raw rendered RGB (first 3 feature
channels) is the skip image that the blocks refine, so at initialisation the output is close to an
upsampled raw render.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from unflat.nets.stylegan2 import NoiseMode, SynthesisBlock


def resize(images: Tensor, size: int) -> Tensor:
    """Bilinear resize to size x size (anti-aliased when shrinking); no-op when already that size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=images.shape[-1] > size)


class SuperResolution(nn.Module):
    """features [B,C,r,r] (first 3 channels = raw RGB in [-1,1]) + w [B,w_dim] -> rgb [B,3,R,R].

    Inputs rendered at another resolution (during the neural-resolution fade-in) are resized to
    ``input_resolution`` first, as EG3D does.
    """

    def __init__(self, feature_channels: int, input_resolution: int, output_resolution: int, w_dim: int,
                 channels: int = 128, conv_clamp: float | None = 256.0) -> None:
        super().__init__()
        if output_resolution < input_resolution:
            raise ValueError("output_resolution must be >= input_resolution")
        octaves = math.log2(output_resolution / input_resolution)
        if octaves != int(octaves):
            raise ValueError("output_resolution / input_resolution must be a power of two")
        self.input_resolution, self.output_resolution = input_resolution, output_resolution
        blocks = [SynthesisBlock(feature_channels, channels, w_dim, input_resolution, 3, "same", conv_clamp)]
        ch, res = channels, input_resolution
        for _ in range(int(octaves)):
            res *= 2
            nxt = max(ch // 2, 16)
            blocks.append(SynthesisBlock(ch, nxt, w_dim, res, 3, "up", conv_clamp))
            ch = nxt
        self.blocks = nn.ModuleList(blocks)

    def forward(self, features: Tensor, w: Tensor, noise_mode: NoiseMode = "random") -> Tensor:
        x = resize(features, self.input_resolution)
        img = x[:, :3]
        ws = w[:, None].expand(-1, 3, -1)
        for block in self.blocks:
            x, img = block(x, img, ws, noise_mode)
        return img
