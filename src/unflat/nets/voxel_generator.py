"""3D convolutional voxel generator (Wu et al. 2016, "3D-GAN"), as used by IG-GAN (Sec. 4.1).

z [B,Z] -> 4^3 feature volume (transposed conv, kernel 4, as a fully connected layer) -> stride-2
transposed 3D convolutions doubling the resolution up to R^3 -> sigmoid occupancy in (0, 1).
BatchNorm + ReLU between layers, as in 3D-GAN.

Axis convention of the output ``voxels[b, 0, i, j, k]``: occupancy at world point (x_i, y_j, z_k)
with x_i = -extent + i * 2 * extent / (R - 1) (same for y, z), i.e. axis 2 is world X, axis 3 is
world Y (up) and axis 4 is world Z; samples include both ends of the box. This is the grid
convention of ``unflat.geometry.marching_cubes``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class VoxelGenerator(nn.Module):
    """z: [B, z_dim] -> voxels: [B,1,R,R,R] occupancy probabilities in (0, 1).

    resolution: R, a power of two >= 8 (paper: 64).
    channels: channels of the last hidden layer (at R/2); each coarser level doubles them up to
        ``max_channels`` (3D-GAN: 64 -> 128 -> 256 -> 512).
    """

    def __init__(self, z_dim: int = 200, resolution: int = 64, channels: int = 64, max_channels: int = 512,
                 output_bias: float = 0.0) -> None:
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"voxel resolution must be a power of two >= 8, got {resolution}")
        self.z_dim, self.resolution = z_dim, resolution
        levels = int(math.log2(resolution // 4))  # 4 -> 8 -> ... -> R
        # widths[i] = channels of the feature volume at 4 * 2**i
        widths = [min(channels * 2 ** (levels - 1 - i), max_channels) for i in range(levels)]
        layers: list[nn.Module] = [
            nn.ConvTranspose3d(z_dim, widths[0], kernel_size=4, stride=1, padding=0, bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for i in range(levels - 1):
            layers += [
                nn.ConvTranspose3d(widths[i], widths[i + 1], kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm3d(widths[i + 1]),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.ConvTranspose3d(widths[-1], 1, kernel_size=4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)
        self.output_bias = output_bias
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # DCGAN / 3D-GAN initialisation: N(0, 0.02) weights, BN scale N(1, 0.02).
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose3d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)
        # Initial occupancy sigmoid(output_bias): 0 gives 3D-GAN's 0.5 everywhere.
        nn.init.constant_(self.net[-1].bias, self.output_bias)

    def forward(self, z: Tensor) -> Tensor:
        """z: [B, z_dim] -> [B,1,R,R,R] in (0, 1)."""
        return torch.sigmoid(self.net(z[:, :, None, None, None]))
