"""`mvtriplane`: geometry-aware class-conditional 3D generation from in-the-wild images
(Shen & Wang, "Geometry aware 3D generation from in-the-wild images in ImageNet", 2024).

What this paper adds to the EG3D-style core in ``triplane_gan``:

* a deeper generator backbone (a non-upsampling synthesis block after every block, ``extra_blocks``)
  and a deeper tri-plane decoder (two extra FC layers, ``decoder_extra_layers=2``), each switchable
  for the ablation (baseline / +d / +g+d);
* no camera conditioning anywhere; cameras sampled over the whole sphere with a perturbation;
* multi-view discrimination: V well-separated views of every latent are rendered and discriminated,
  the adversarial loss is their average. It is switched on from ``multiview_start_step``, or
  automatically when a mode-collapse signal fires (``multiview_auto``): the diversity of a fixed probe
  set of samples falls below ``1 - diversity_drop`` of its peak. The firing step is logged (run.log,
  metrics ``multiview/triggered``) and checkpointed.
* PTI single-image inversion (``unflat invert``), in ``unflat.methods.pti``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from unflat.data.format import DatasetInfo
from unflat.data.loader import Batch
from unflat.errors import ConfigError
from unflat.methods.base import TrainContext
from unflat.methods.registry import register_method
from unflat.methods.triplane_config import (TRIPLANE_FLAT_NAMES, TriplaneCamerasConfig, TriplaneDiscriminatorConfig,
                                            TriplaneExportConfig, TriplaneGANConfig, TriplaneGeneratorConfig,
                                            TriplaneRegularisationConfig, TriplaneRenderingConfig)
from unflat.methods.triplane_gan import TriplaneGAN

log = logging.getLogger("unflat.run")


@dataclass
class MultiviewConfig:
    """Multi-view discrimination: several views of one latent discriminated together, switched on from a step or
    when sample diversity collapses."""

    views: int = 3
    """Views rendered and discriminated per latent while multi-view discrimination is on (the paper uses 3)."""
    start_step: int = 0
    """Step from which multi-view discrimination is on (-1 = only when the automatic trigger fires)."""
    auto: bool = False
    """Switch multi-view discrimination on automatically when sample diversity collapses."""
    diversity_every: int = 200
    """Measure the diversity of a fixed probe set of samples every N steps (0 = never)."""
    diversity_probe: int = 16
    """Number of probe latents (fixed seed, classes spread evenly) for the diversity signal."""
    diversity_drop: float = 0.25
    """Trigger when diversity falls below (1 - this) times its peak so far."""
    diversity_warmup: int = 1000
    """No automatic trigger before this step (diversity is still forming)."""


@dataclass
class MVTriplaneConfig(TriplaneGANConfig):
    """mvtriplane: tri-plane GAN with a deeper generator/decoder and multi-view discrimination."""

    flat_names: ClassVar[Mapping[str, str]] = MappingProxyType({
        **TRIPLANE_FLAT_NAMES, "multiview_views": "multiview.views", "multiview_start_step": "multiview.start_step",
        "multiview_auto": "multiview.auto",
        **{f"diversity_{name}": f"multiview.diversity_{name}" for name in ("every", "probe", "drop", "warmup")}})

    multiview: MultiviewConfig = field(default_factory=MultiviewConfig)

    def validate(self) -> None:
        super().validate()
        mv = self.multiview
        if mv.views < 1:
            raise ConfigError("multiview.views", f"must be >= 1, got {mv.views}")
        if mv.start_step < -1:
            raise ConfigError("multiview.start_step", "must be >= 0, or -1 for never")
        if not 0 < mv.diversity_drop < 1:
            raise ConfigError("multiview.diversity_drop", f"must be in (0, 1), got {mv.diversity_drop}")
        if mv.diversity_every < 0 or mv.diversity_probe < 2:
            raise ConfigError("multiview.diversity_probe", "need diversity_every >= 0 and diversity_probe >= 2")
        if mv.auto and mv.diversity_every == 0:
            raise ConfigError("multiview.diversity_every", "multiview.auto needs multiview.diversity_every > 0")


def sample_diversity(images: Tensor, size: int = 16) -> tuple[float, float]:
    """Intra-batch diversity of images [N,3,H,W] in [-1,1]: (mean pairwise RMS distance of
    size x size thumbnails, std across the batch of the mean colours). Both fall as modes collapse;
    the paper names "lack of diversity in the colours" as the obvious indicator."""
    thumbs = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    flat = thumbs.flatten(1)
    dist = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    n = flat.shape[0]
    pairwise = dist.sum() / (n * (n - 1))
    colour = images.float().mean(dim=(2, 3)).std(0).mean()
    return float(pairwise), float(colour)


@register_method("mvtriplane", config=MVTriplaneConfig,
                 description="class-conditional tri-plane GAN with multi-view discrimination (ImageNet 3D, Shen & Wang 2024)",
                 presets=lambda: {"tiny": tiny, "small": small, "paper": paper})
class MVTriplane(TriplaneGAN):
    cfg: MVTriplaneConfig

    def __init__(self, cfg: MVTriplaneConfig, info: DatasetInfo, ctx: TrainContext) -> None:
        super().__init__(cfg, info, ctx)
        self.multiview_since = cfg.multiview.start_step  # -1 = off
        self.diversity_peak = 0.0
        self.diversity_last = 0.0

    def views_per_latent(self, step: int) -> int:
        on = 0 <= self.multiview_since <= step
        return self.cfg.multiview.views if on else 1

    def train_step(self, batch: Batch, step: int) -> dict[str, float | Tensor]:
        logs = super().train_step(batch, step)
        cfg = self.cfg
        triggered = 0.0
        if cfg.multiview.diversity_every and (step + 1) % cfg.multiview.diversity_every == 0:
            pairwise, colour = self.probe_diversity()
            logs["diversity/pairwise"], logs["diversity/colour"] = pairwise, colour
            self.diversity_last = pairwise
            if step + 1 >= cfg.multiview.diversity_warmup:
                if (cfg.multiview.auto and self.views_per_latent(step + 1) == 1
                        and self.diversity_peak > 0 and pairwise < (1 - cfg.multiview.diversity_drop) * self.diversity_peak):
                    self.multiview_since = step + 1
                    triggered = 1.0
                    log.warning("mvtriplane: sample diversity fell to %.4f (peak %.4f): multi-view discrimination "
                                "(%d views) on from step %d", pairwise, self.diversity_peak, cfg.multiview.views, step + 1)
                self.diversity_peak = max(self.diversity_peak, pairwise)
        logs["multiview/on"] = float(self.views_per_latent(step + 1) > 1)
        logs["multiview/triggered"] = triggered
        return logs

    @torch.no_grad()
    def probe_diversity(self) -> tuple[float, float]:
        """Diversity of the current generator (not the EMA, which lags a collapse) on a fixed probe set."""
        cfg = self.cfg
        n = cfg.multiview.diversity_probe
        g = torch.Generator().manual_seed(cfg.seed + 7919)
        z = torch.randn(n, cfg.generator.z_dim, generator=g).to(self.device)
        ids = torch.arange(n) % max(self.num_classes, 1)
        cams = self.sample_cameras(n, 1, g)
        c = self.G.class_onehot(ids.to(self.device), n, self.device)
        with self.autocast():
            out = self.G(z, c, cams, self.neural_resolution(self.images_seen), noise_mode="const", perturb=False)
        return sample_diversity(out.image)

    def extra_state(self) -> dict:
        return {**super().extra_state(), "multiview_since": self.multiview_since,
                "diversity_peak": self.diversity_peak, "diversity_last": self.diversity_last}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.multiview_since = int(state.get("multiview_since", self.cfg.multiview.start_step))
        self.diversity_peak = float(state.get("diversity_peak", 0.0))
        self.diversity_last = float(state.get("diversity_last", 0.0))


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------
def tiny() -> MVTriplaneConfig:
    """Tests: a step in well under a second on one CPU core."""
    return MVTriplaneConfig(
        batch_size=4, max_steps=2, checkpoint_every=1, log_every=1, sample_every=0,
        generator=TriplaneGeneratorConfig(z_dim=16, w_dim=16, mapping_layers=1, plane_resolution=16, plane_channels=8,
                                          channel_base=128, channel_max=16, decoder_hidden=16, decoder_features=8,
                                          ema_half_life_images=100.0),
        rendering=TriplaneRenderingConfig(neural_resolution=8, output_resolution=16, sr_channels=16, num_coarse=8,
                                          num_fine=8),
        discriminator=TriplaneDiscriminatorConfig(channel_base=128, channel_max=16, mapping_layers=1, blur_sigma=0.0),
        regularisation=TriplaneRegularisationConfig(r1_every=2, density_reg_every=2),
        export=TriplaneExportConfig(mesh_resolution=24),
        multiview=MultiviewConfig(views=2, start_step=0, diversity_every=0, diversity_probe=4, diversity_warmup=0),
    )


def small() -> MVTriplaneConfig:
    """CPU demo on 32x32 synthetic multi-class data: learns coarse colour/shape in minutes on 2 cores."""
    return MVTriplaneConfig(
        batch_size=8, max_steps=2000, checkpoint_every=250, log_every=25, sample_every=250,
        generator=TriplaneGeneratorConfig(z_dim=64, w_dim=64, mapping_layers=2, plane_resolution=32, plane_channels=16,
                                          channel_base=1024, channel_max=64, decoder_hidden=32, decoder_features=16,
                                          lr=0.0025, ema_half_life_images=2000.0),
        rendering=TriplaneRenderingConfig(neural_resolution=16, output_resolution=32, sr_channels=32, num_coarse=16,
                                          num_fine=16),
        discriminator=TriplaneDiscriminatorConfig(channel_base=1024, channel_max=64, mapping_layers=2, lr=0.002,
                                                  blur_sigma=2.0, blur_fade_images=4000),
        regularisation=TriplaneRegularisationConfig(r1_gamma=1.0),
        cameras=TriplaneCamerasConfig(elevation_min=-30.0, elevation_max=60.0, perturb_deg=5.0),
        multiview=MultiviewConfig(views=3, start_step=-1, auto=True, diversity_every=100, diversity_probe=16,
                                  diversity_warmup=300),
        export=TriplaneExportConfig(mesh_resolution=64),
    )


def paper() -> MVTriplaneConfig:
    """The paper's sizes: tri-plane 256 x 32 x 3, +g +d, neural rendering 64 -> SR 128 (ImageNet at 128),
    48+48 samples, batch 32, EG3D's optimiser settings; multi-view (3 views) switched on automatically
    when diversity falls, as the paper does just before mode collapse."""
    return MVTriplaneConfig(
        batch_size=32, max_steps=500_000, checkpoint_every=2000, log_every=100, sample_every=2000,
        compile=True,  # measured on an H100: 50.7 vs 35.9 images/s eager at EG3D sizes (BENCHMARKS.md)
        generator=TriplaneGeneratorConfig(plane_resolution=256, plane_channels=32, extra_blocks=True,
                                          decoder_extra_layers=2),
        rendering=TriplaneRenderingConfig(output_resolution=128, neural_resolution=64, num_coarse=48, num_fine=48),
        regularisation=TriplaneRegularisationConfig(r1_gamma=1.0),
        multiview=MultiviewConfig(views=3, start_step=-1, auto=True, diversity_every=1000, diversity_probe=64,
                                  diversity_warmup=20_000),
        export=TriplaneExportConfig(mesh_resolution=256),
    )
