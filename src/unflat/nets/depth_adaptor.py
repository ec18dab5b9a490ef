"""3DGP's depth adaptor: maps the generator's rendered depth into the estimator's depth space.

A monocular estimator's depth is imprecise; asking the generator to reproduce it exactly would bake
the estimator's errors into the geometry. The adaptor is a shallow conv net between the rendered
depth and the discriminator. It first normalises camera-z depth to [-1, 1] between a *learned* near
plane and the far plane, then runs ``num_layers`` conv layers; a shared 1x1 head reads a depth map out
after each layer. During training every sample uses one of these ``num_layers + 1`` maps (0 = the
normalised depth itself, i.e. no adaptation), drawn with linearly increasing probabilities whose first
term anneals from ``1/(num_layers+1)`` (uniform) to ``start_p``; at evaluation the deepest map is used.
So the generator always sees some pressure to match the real depth directly (the shallow picks),
while the deep picks absorb the estimator's artefacts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DepthAdaptor(nn.Module):
    """depth [B,1,H,W] camera z in [near, far] -> adapted depth [B,1,H,W] (roughly [-1, 1], -1 near).

    near, far: the volume renderer's ray bounds.  kernel_size / hidden / num_layers: the conv stack.
    near_offset_max_fraction, near_offset_bias: the learned near plane moves within
    [near, near + max_fraction * (far - near)], starting at sigmoid(bias) of that span.
    start_p: final probability of picking the un-adapted map (annealed from uniform by ``set_progress``).
    """

    def __init__(self, near: float, far: float, hidden: int = 64, num_layers: int = 3, kernel_size: int = 5,
                 near_offset_max_fraction: float = 0.25, near_offset_bias: float = -3.0, start_p: float = 0.1) -> None:
        super().__init__()
        if far <= near:
            raise ValueError(f"far ({far}) must exceed near ({near})")
        num_outputs = num_layers + 1
        if not 0 <= start_p <= 2 / num_outputs:
            # Beyond 2/n the linearly increasing probabilities would go negative.
            raise ValueError(f"start_p must lie in [0, {2 / num_outputs:.3f}] for {num_layers} layers, got {start_p}")
        self.near, self.far = float(near), float(far)
        self.max_fraction, self.start_p_final = near_offset_max_fraction, start_p
        layers, cin = [], 1
        for _ in range(num_layers):
            layers.append(nn.Sequential(nn.Conv2d(cin, hidden, kernel_size, padding=kernel_size // 2), nn.LeakyReLU(0.2)))
            cin = hidden
        self.layers = nn.ModuleList(layers)
        self.head = nn.Conv2d(hidden, 1, 1) if num_layers > 0 else None
        self.near_offset_raw = nn.Parameter(torch.tensor(float(near_offset_bias)))
        self.register_buffer("progress", torch.zeros(()))  # annealing progress in [0, 1], checkpointed

    @property
    def num_outputs(self) -> int:
        return len(self.layers) + 1

    def set_progress(self, progress: float) -> None:
        self.progress.fill_(min(max(float(progress), 0.0), 1.0))

    @property
    def start_p(self) -> float:
        """Current probability of the un-adapted output: 1/n at progress 0 -> start_p at progress 1."""
        t = float(self.progress)
        return (1 - t) / self.num_outputs + t * self.start_p_final

    def selection_probs(self) -> Tensor:
        """[n] probabilities of each output, p_i = start_p + i * slope, summing to one."""
        n = self.num_outputs
        if n == 1:
            return torch.ones(1)
        slope = (1 - n * self.start_p) * 2 / (n * (n - 1))
        return self.start_p + slope * torch.arange(n, dtype=torch.float32)

    def near_plane(self) -> Tensor:
        """The learned near plane (a scalar tensor, differentiable)."""
        return self.near + torch.sigmoid(self.near_offset_raw) * self.max_fraction * (self.far - self.near)

    def normalise(self, depth: Tensor) -> Tensor:
        """[near', far] -> [-1, 1] with the learned near plane near'."""
        near = self.near_plane().to(depth.dtype)
        return (depth - (self.far + near) / 2) / (self.far - near) * 2

    def all_outputs(self, depth: Tensor) -> Tensor:
        """Every candidate map: [B, n, 1, H, W] (index 0 = normalised, un-adapted depth)."""
        x = self.normalise(depth)
        outs = [x]
        for layer in self.layers:
            x = layer(x)
            outs.append(self.head(x))  # type: ignore[misc]
        return torch.stack(outs, 1)

    def forward(self, depth: Tensor, pick: Tensor | None = None) -> Tensor:
        """Adapted depth [B,1,H,W]. ``pick`` [B] chooses outputs explicitly; otherwise random in training
        (torch's global RNG, so resume is exact) and the deepest at evaluation."""
        outs = self.all_outputs(depth)
        if pick is None:
            if self.training:
                pick = torch.multinomial(self.selection_probs(), len(depth), replacement=True).to(depth.device)
            else:
                pick = torch.full((len(depth),), self.num_outputs - 1, device=depth.device, dtype=torch.long)
        return outs[torch.arange(len(depth), device=depth.device), pick]
