"""Discriminator output matching (DOM), IG-GAN Sec. 3, Eq. (8).

With F(y) a function of D(y), D the discriminator's probability that y is real (D = sigmoid(logit)); Eq. (8)
prints F = log D, the paper's introduction describes F as D's loss on the generated image (see ``DomSpace``):

    L_DOM(phi) = E_{x_c ~ p_G, x_d ~ p(x_d | x_c)} [ (F(R_d(x_d)) - F(R_phi(x_c)))^2 ]

R_d(x_d): the off-the-shelf (OpenGL) render of the binarised voxels; R_phi(x_c): the proxy neural
renderer's image of the continuous voxels. Only the proxy renderer is trained by this loss: the
OpenGL side is a constant target and the discriminator's weights are not updated by it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


DomSpace = Literal["log_d", "d_loss", "probability"]
"""What D's output is matched as:

* ``log_d``: F = log D, Eq. (8) as printed.
* ``d_loss``: F = log(1 - D) (`unflat train iggan`'s default), the discriminator's loss term for a generated image (Eq. 2), which is how the paper's
  introduction describes DOM ("computing the discriminator loss of an image rendered by the neural renderer ...
  matched to the average loss achieved by randomly thresholding the volume"). Its minimiser is the same kind of
  population match; the difference is where it saturates: dF/dlogit = -D fades when D is sure an image is fake
  (the regime the GPU runs reached), where log D's slope 1 - D stays 1 and the squared gap grows with D's
  confidence.
* ``probability``: F = D, unflat's own bounded ablation (not in the paper): in [0, 1], slope D(1 - D) fades at
  both ends.

In the GPU ablation the ``log_d`` arms diverged exactly when D won (docs/lab/results-h100.md)."""


def log_d(logits: Tensor) -> Tensor:
    """F = log D = log sigmoid(logit), computed stably."""
    return F.logsigmoid(logits)


def matched_output(logits: Tensor, space: DomSpace) -> Tensor:
    """F(y) from D's logits: log D (Eq. 8), log(1 - D) (D's loss on a fake) or D itself."""
    if space == "log_d":
        return log_d(logits)
    if space == "d_loss":
        return F.logsigmoid(-logits)  # log(1 - sigmoid(l)) = log sigmoid(-l), stable for large |l|
    if space == "probability":
        return torch.sigmoid(logits)
    raise ValueError(f"unknown DOM space {space!r}; use 'log_d', 'd_loss' or 'probability'")


def dom_loss_from_logits(proxy_logits: Tensor, opengl_logits: Tensor, space: DomSpace) -> Tensor:
    """Eq. (8) from discriminator logits: mean_b (F(R_d(x_d))_b - F(R_phi(x_c))_b)^2, F given by ``space``.

    proxy_logits: [B] D's logits on the proxy renders of the continuous voxels (carry the proxy's graph).
    opengl_logits: [B] D's logits on the OpenGL renders of the binarised voxels (treated as a constant).
    """
    return (matched_output(opengl_logits.detach(), space) - matched_output(proxy_logits, space)).square().mean()


def dom_loss(discriminator: nn.Module, proxy_images: Tensor, opengl_images: Tensor, space: DomSpace) -> Tensor:
    """Eq. (8) given the discriminator and both renders, each [B,3,S,S] in [-1,1].

    Zero exactly when the discriminator scores each proxy image like its OpenGL counterpart (e.g.
    when the images are equal); gradients flow into ``proxy_images`` only when they require grad.
    """
    # One forward for both halves: a spectrally normalised D in training mode advances its power
    # iteration on every call, so two calls would score equal images slightly differently.
    logits = discriminator(torch.cat([proxy_images, opengl_images.detach()]))
    proxy_logits, opengl_logits = logits.split([proxy_images.shape[0], opengl_images.shape[0]])
    return dom_loss_from_logits(proxy_logits, opengl_logits, space)
