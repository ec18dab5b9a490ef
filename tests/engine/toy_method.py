"""A tiny GAN used only to test the engine: two networks, two optimisers, EMA, an LR schedule,
noise from the global RNG, and an optional NaN at a chosen step. Not a user-facing method."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.config import RunConfig
from unflat.engine.ema import make_ema, update_ema
from unflat.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from unflat.methods.base import Method, Samples
from unflat.methods.registry import MethodSpec, register


@dataclass
class ToyConfig(RunConfig):
    """Engine test method."""

    latent_dim: int = 8
    """Latent size."""
    lr: float = 1e-3
    """Learning rate of both networks."""
    nan_at_step: int = -1
    """Inject a NaN loss at this step (-1 = never)."""
    r1_every: int = 2
    """Lazy R1 interval."""


class ToyGAN(Method):
    name = "toy"
    Config = ToyConfig

    def __init__(self, cfg: ToyConfig, info, ctx) -> None:
        super().__init__(cfg, info, ctx)
        self.G = self.add_network("G", nn.Sequential(nn.Linear(cfg.latent_dim, 32), nn.ReLU(), nn.Linear(32, 3 * 8 * 8)))
        self.D = self.add_network("D", nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)))
        self.G_ema = self.add_network("G_ema", make_ema(self.G), train=False)
        self.add_optimizer("G", torch.optim.Adam(self.G.parameters(), cfg.lr, betas=(0.0, 0.99)),
                           schedule=lambda step: min(1.0, (step + 1) / 4))
        self.add_optimizer("D", torch.optim.Adam(self.D.parameters(), cfg.lr, betas=(0.0, 0.99)))

    def generate_images(self, z: Tensor, net: nn.Module) -> Tensor:
        return torch.tanh(net(z)).view(-1, 3, 8, 8)

    def train_step(self, batch, step: int) -> dict[str, Tensor]:
        real = F.adaptive_avg_pool2d(batch.images, 8)
        z = torch.randn(len(real), self.cfg.latent_dim, device=self.device)
        with self.autocast():
            g_loss = generator_loss(self.D(self.generate_images(z, self.G)))
        if step == self.cfg.nan_at_step and self.lr_scale == 1.0:  # a lowered learning rate "cures" it
            g_loss = g_loss * float("nan")
        self.optimize("G", g_loss)
        real = real.detach().requires_grad_(self.due(self.cfg.r1_every, step))
        real_logits = self.D(real)
        d_loss = discriminator_loss(real_logits, self.D(self.generate_images(z, self.G).detach()))
        if self.due(self.cfg.r1_every, step):
            d_loss = d_loss + 0.5 * r1_penalty(real_logits, real)
        self.optimize("D", d_loss)
        update_ema(self.G_ema, self.G, 0.9)
        return {"loss_G": g_loss.detach(), "loss_D": d_loss.detach()}

    @torch.no_grad()
    def sample(self, n: int, seed: int, class_ids=None, cameras=None) -> Samples:
        z = torch.randn(n, self.cfg.latent_dim, generator=torch.Generator().manual_seed(seed)).to(self.device)
        return Samples(images=self.generate_images(z, self.G_ema))


def tiny() -> ToyConfig:
    return ToyConfig(batch_size=4, max_steps=6, checkpoint_every=3, log_every=1, sample_every=0, tensorboard=False)


SPEC = register(MethodSpec("toy", "engine test method", ToyConfig, ToyGAN, {"tiny": tiny, "small": tiny, "paper": tiny}))
