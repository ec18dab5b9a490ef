"""A learned far background for volume-rendered generators trained on photos (the scene behind the object).

Tri-plane generators on in-the-wild images otherwise paint the background into the tri-plane box (a "sheet"
behind the object, which ends up in exported meshes) or leave it black. ``SphereBackground`` is the far
background at infinite depth, in the spirit of 3DGP's ``use_inf_depth`` / EpiGRAF's background sphere: a small
MLP on the ray's *direction* (Fourier features; a point on the sphere at infinity), conditioned on the latent
``w`` (each sample has its own scene), producing the same colour features as the tri-plane decoder. It is
composited behind the volume: ``features = volume + (1 - opacity) * background``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from unflat.nets.stylegan2 import EqualLinear


class SphereBackground(nn.Module):
    """(ray directions [N,R,3] unit, w [N,w_dim]) -> background features [N,R,F] in about [0,1]."""

    def __init__(self, w_dim: int, out_features: int, hidden: int = 64, frequencies: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.frequencies = frequencies
        encoded = 3 + 6 * frequencies
        self.embed = EqualLinear(encoded, hidden)
        self.style = EqualLinear(w_dim, hidden, bias_init=1.0)  # a per-sample gain on the first layer
        blocks: list[nn.Module] = []
        for _ in range(layers - 1):
            blocks += [nn.Softplus(), EqualLinear(hidden, hidden)]
        blocks += [nn.Softplus(), EqualLinear(hidden, out_features)]
        self.net = nn.Sequential(*blocks)
        self.out_features = out_features

    def encode(self, dirs: Tensor) -> Tensor:
        """[N,R,3] -> [N,R,3+6K]: the direction and its sines/cosines at K octaves (smooth, low-frequency scenes)."""
        scales = 2.0 ** torch.arange(self.frequencies, device=dirs.device, dtype=dirs.dtype) * math.pi
        angles = dirs[..., None, :] * scales[:, None]  # [N,R,K,3]
        return torch.cat([dirs, angles.sin().flatten(-2), angles.cos().flatten(-2)], -1)

    def forward(self, dirs: Tensor, w: Tensor) -> Tensor:
        h = self.embed(self.encode(dirs)) * self.style(w)[:, None]
        return torch.sigmoid(self.net(h).float()) * (1 + 2 * 0.001) - 0.001  # the decoder's colour range
