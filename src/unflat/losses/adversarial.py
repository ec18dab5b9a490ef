"""GAN losses shared by every adversarial method: non-saturating logistic loss and R1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: softplus(-D(G(z))), averaged."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Logistic discriminator loss: softplus(-D(x)) + softplus(D(G(z))), averaged."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def r1_penalty(real_logits: Tensor, real_inputs: Tensor | list[Tensor]) -> Tensor:
    """R1 = E ||d D(x) / d x||^2 over the real inputs (which must require grad). Multiply by gamma/2."""
    inputs = [real_inputs] if isinstance(real_inputs, Tensor) else list(real_inputs)
    grads = torch.autograd.grad(real_logits.sum(), inputs, create_graph=True)
    return sum(g.square().flatten(1).sum(1) for g in grads).mean()
