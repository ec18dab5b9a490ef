"""Exponential moving average of a network's weights (StyleGAN-style generator EMA)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` to be updated with ``update_ema``."""
    ema = copy.deepcopy(module).eval()
    ema.requires_grad_(False)
    return ema


def ema_beta(batch_size: int, half_life_images: float, ramp_fraction: float | None = None, images_seen: int = 0) -> float:
    """StyleGAN2/EG3D decay: weights halve their influence after ``half_life_images`` images.

    With ``ramp_fraction`` the half-life is capped at ``images_seen * ramp_fraction`` early in training.
    """
    half_life = half_life_images
    if ramp_fraction is not None:
        half_life = min(half_life, images_seen * ramp_fraction)
    return 0.5 ** (batch_size / max(half_life, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, module: nn.Module, beta: float) -> None:
    """ema = beta * ema + (1 - beta) * module for parameters; buffers are copied."""
    ema_params = list(ema.parameters())
    params = [p.detach() for p in getattr(module, "_orig_mod", module).parameters()]
    torch._foreach_lerp_(ema_params, params, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), getattr(module, "_orig_mod", module).buffers()):
        b_ema.copy_(b)
