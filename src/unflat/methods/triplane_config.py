"""Configuration of the tri-plane GAN core (mvtriplane and 3dgp), nested by component: ``generator``,
``rendering``, ``cameras``, ``discriminator``, ``regularisation`` and ``export``, each a flag group
(``--generator.channel-max 256``, ``--discriminator.channel-base 16384``) with its own ``--help`` section.

Runs saved before the nesting wrote every field flat (``d_channel_base``); :data:`TRIPLANE_FLAT_NAMES` maps each
flat name to its place, and ``unflat.config.config_from_dict`` moves a saved run's flat keys there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal, Mapping

from unflat.config import RunConfig, require_positive
from unflat.errors import ConfigError


@dataclass
class TriplaneGeneratorConfig:
    """Generator: mapping network, StyleGAN2 synthesis of the tri-planes, the tri-plane decoder, its optimiser and EMA."""

    z_dim: int = 512
    """Latent code size."""
    w_dim: int = 512
    """Intermediate latent (style) size."""
    mapping_layers: int = 2
    """Mapping network depth (EG3D uses 2)."""
    class_conditional: bool = True
    """Condition generator and discriminator on the dataset's class labels."""
    plane_resolution: int = 256
    """Tri-plane resolution (the synthesis network's output size)."""
    plane_channels: int = 32
    """Feature channels per plane (3 planes)."""
    channel_base: int = 32768
    """Synthesis channels at resolution r are min(channel_base / r, channel_max)."""
    channel_max: int = 512
    """Maximum synthesis channels."""
    extra_blocks: bool = True
    """Deeper backbone: a non-upsampling synthesis block after every block (the paper's "+g")."""
    decoder_hidden: int = 64
    """Tri-plane decoder hidden width."""
    decoder_extra_layers: int = 2
    """Extra hidden FC layers in the decoder (the paper's "+d" uses 2; EG3D has 0)."""
    decoder_features: int = 32
    """Colour-feature channels the decoder outputs (the first 3 are the raw RGB)."""
    plane_aggregation: Literal["sum", "mean"] = "sum"
    """How the three planes' features combine (the paper sums; EG3D averages)."""
    box_size: float = 2.0
    """Side of the cube (centred at the origin) that the tri-planes cover, in world units."""
    background: Literal["auto", "white", "learned", "none"] = "auto"
    """Behind the object: "white" (renders on white), "learned" (a far background on the view direction,
    conditioned on the latent: nets/background.py), "none" (empty rays stay black; the volume must paint any
    background); "auto" = white for white-background datasets (manifest "background"), learned otherwise."""
    background_frequencies: int = 4
    """Octaves of the learned far background's Fourier features of the ray direction (K: frequencies pi * 2^k,
    k < K; 4 puts about 3 cycles across a 40-degree view: a smooth scene, detail left to the super-resolution)."""
    density_blob: float | Literal["auto"] = "auto"
    """A foreground prior (Magic3D's density bias): strength * (1 - |x| / density_blob_radius) is added to the
    decoder's raw density, so an object sits at the centre from the first step and the box around it starts
    clear, leaving what is behind the object to a learned background (on wild data without it, the far background
    took the whole image and the volume stayed empty for 800-1,000 steps: docs/lab/wild-data.md). The generator
    can learn to outweigh it. "auto" = 5 (x 0.5 / radius for a blob smaller than 0.5) with a learned background, 0 (off)
    otherwise."""
    density_blob_radius: float | Literal["auto"] = "auto"
    """Where the density bias crosses zero, in world units. "auto" = 0.45 x the frame's half-width at the origin
    (cameras.radius x tan(cameras.fov / 2)), so the blob covers about half the frame whatever the cameras: 0.49
    for the embedded data's cameras (radius 3, fov 40), 0.22 for 3dgp's paper preset (radius 2, fov 27.5)."""
    white_background: bool | None = None
    """Deprecated (runs saved before --generator.background): true = "white", false = "none"; unset = use
    --generator.background."""
    channels_last: bool = True
    """Keep convolution weights/activations channels-last on CUDA (faster convolutions with bf16)."""
    lr: float = 0.0025
    """Generator Adam learning rate."""
    ema_half_life_images: float = 10_000.0
    """Generator EMA half-life in images (EG3D: 10k images for batch 32)."""
    ema_ramp: float = 0.05
    """EMA half-life ramp-up as a fraction of images seen (0 = none)."""


@dataclass
class TriplaneRenderingConfig:
    """Volume rendering of the tri-planes and the 2D super-resolution after it."""

    neural_resolution: int = 64
    """Volume-rendering resolution (the super-resolution network's input size)."""
    neural_resolution_final: int = 0
    """Fade the rendering resolution linearly to this over neural_fade_images (0 = no fade)."""
    neural_fade_images: int = 1_000_000
    """Images over which the neural rendering resolution fades in."""
    output_resolution: int = 0
    """Final image size after super-resolution (0 = the dataset's resolution)."""
    sr_channels: int = 128
    """Super-resolution network width."""
    num_coarse: int = 48
    """Stratified samples per ray."""
    num_fine: int = 48
    """Importance samples per ray."""
    ray_near: float = 1.8
    """Ray start distance from the camera (default: cameras.radius - 1.2, the unit sphere plus a margin)."""
    ray_far: float = 4.2
    """Ray end distance from the camera (default: cameras.radius + 1.2)."""
    fused_sampling: bool = False
    """Sample the three planes with unflat's fused Triton kernel on CUDA (no fp32 copies or per-plane
    intermediates; channels-last reads); grid_sample elsewhere or without Triton."""
    grad_checkpoint: bool = False
    """Gradient checkpointing of tri-plane rendering: recompute ray sampling, decoding and compositing in
    the backward pass, chunk by chunk of rays (less memory for about one more render forward per step)."""
    grad_checkpoint_rays: int = 1024
    """Rays per image in each recomputed chunk (with grad_checkpoint)."""


@dataclass
class CameraRangeConfig:
    """Where sampled cameras sit: distance, field of view, elevation and azimuth ranges."""

    radius: float = 3.0
    """Distance of sampled cameras from the origin (unflat's synthetic data: 3, fov 40 frames the unit sphere)."""
    fov: float = 40.0
    """Vertical field of view of sampled cameras, degrees."""
    elevation_min: float = -90.0
    """Lowest sampled camera elevation, degrees (-90..90 with the azimuth range below = the whole sphere)."""
    elevation_max: float = 90.0
    """Highest sampled camera elevation, degrees."""
    azimuth_min: float = -180.0
    """Smallest sampled azimuth, degrees."""
    azimuth_max: float = 180.0
    """Largest sampled azimuth, degrees."""


@dataclass
class TriplaneCamerasConfig(CameraRangeConfig):
    """Cameras of generated views: the range below, several well-separated views per latent."""

    perturb_deg: float = 5.0
    """Std. dev. of a random tilt added to every sampled view direction (against "billboard" solutions)."""


@dataclass
class TriplaneDiscriminatorConfig:
    """Discriminator: StyleGAN2 discriminator with class-embedding mapping, its optimiser and input blur."""

    channel_base: int = 32768
    """Discriminator channels at resolution r are min(channel_base / r, channel_max)."""
    channel_max: int = 512
    """Maximum discriminator channels."""
    mapping_layers: int = 8
    """Layers of the discriminator's class-embedding mapping network."""
    mbstd_group: int = 4
    """Minibatch standard-deviation group size."""
    lr: float = 0.002
    """Discriminator Adam learning rate."""
    blur_sigma: float = 10.0
    """Initial Gaussian blur (pixels) of discriminator inputs, fading to 0 (EG3D)."""
    blur_fade_images: int = 200_000
    """Images over which the discriminator blur fades out."""
    xflip: bool = False
    """Mirror each real image left-right with probability 0.5 before the discriminator (labels stay true; the
    discriminator sees no camera, and the cameras are symmetric in azimuth): twice the data for left-right
    symmetric objects."""


@dataclass
class TriplaneRegularisationConfig:
    """Regularisers: lazy R1 on the discriminator, EG3D's density regulariser on the generator."""

    r1_gamma: float = 1.0
    """R1 weight (gamma)."""
    r1_every: int = 16
    """Lazy R1: apply every N steps, scaled by N."""
    density_reg: float = 0.25
    """EG3D density regulariser weight (L1 between densities at nearby random points); 0 = off."""
    density_reg_every: int = 4
    """Apply the density regulariser every N steps."""


@dataclass
class TriplaneExportConfig:
    """Samples, meshes and videos made from the trained generator."""

    truncation_psi: float = 1.0
    """Truncation for samples, meshes and videos (1 = none)."""
    mesh_resolution: int = 128
    """Marching-cubes grid resolution for exported meshes."""
    mesh_density: float | Literal["auto"] = "auto"
    """Density level of the exported surface. "auto": per sample, the level whose silhouettes best match where
    the sample's rendering reaches opacity 0.5 from a few cameras of the training distribution
    (geometry/iso_level.py; a fixed level finds the invisible white fog a generator may paint around the object
    on a white background). A number: that density (EG3D uses 10; the field's mean when never crossed)."""
    mesh_min_component: float = 0.05
    """Exported meshes drop floating pieces whose area is below this fraction of the largest piece (0 keeps all)."""
    mesh_object_only: Literal["auto", "on", "off"] = "auto"
    """Export only the object: density inside the unit sphere, in pieces connected to the one around the centre
    (geometry/foreground.py); "auto" = on when the background is not white (a generator trained on photos may
    paint it into the box)."""


def _moved(group: str, names: str, prefix: str = "") -> dict[str, str]:
    """{prefix + name: group.name} for each name: fields that kept their name (after the prefix) in their group."""
    return {prefix + name: f"{group}.{name}" for name in names.split()}


TRIPLANE_FLAT_NAMES: Mapping[str, str] = MappingProxyType({
    **_moved("generator", "z_dim w_dim mapping_layers class_conditional plane_resolution plane_channels channel_base "
                          "channel_max extra_blocks decoder_hidden decoder_extra_layers decoder_features plane_aggregation "
                          "box_size background background_frequencies density_blob density_blob_radius white_background channels_last ema_half_life_images ema_ramp"),
    "g_lr": "generator.lr",
    **_moved("rendering", "neural_resolution neural_resolution_final neural_fade_images output_resolution sr_channels "
                          "num_coarse num_fine ray_near ray_far fused_sampling grad_checkpoint grad_checkpoint_rays"),
    "camera_radius": "cameras.radius", "camera_fov": "cameras.fov", "camera_perturb_deg": "cameras.perturb_deg",
    **_moved("cameras", "elevation_min elevation_max azimuth_min azimuth_max"),
    **_moved("discriminator", "channel_base channel_max mapping_layers", prefix="d_"),
    **_moved("discriminator", "mbstd_group blur_sigma blur_fade_images xflip"),
    "d_lr": "discriminator.lr",
    **_moved("regularisation", "r1_gamma r1_every density_reg density_reg_every"),
    **_moved("export", "truncation_psi mesh_resolution mesh_density mesh_min_component mesh_object_only"),
})
"""Flat field names of runs saved before the configs nested -> their dotted place (``adam_beta2`` stayed)."""


@dataclass
class TriplaneGANConfig(RunConfig):
    """Tri-plane GAN settings shared by mvtriplane and 3dgp (defaults: EG3D's ShapeNet-like sizes)."""

    flat_names: ClassVar[Mapping[str, str]] = TRIPLANE_FLAT_NAMES
    # Runs saved before the density blob existed trained without it.
    defaults_of_older_runs: ClassVar[Mapping[str, object]] = MappingProxyType({"generator": {"density_blob": 0.0}})

    generator: TriplaneGeneratorConfig = field(default_factory=TriplaneGeneratorConfig)
    rendering: TriplaneRenderingConfig = field(default_factory=TriplaneRenderingConfig)
    cameras: TriplaneCamerasConfig = field(default_factory=TriplaneCamerasConfig)
    discriminator: TriplaneDiscriminatorConfig = field(default_factory=TriplaneDiscriminatorConfig)
    regularisation: TriplaneRegularisationConfig = field(default_factory=TriplaneRegularisationConfig)
    export: TriplaneExportConfig = field(default_factory=TriplaneExportConfig)
    adam_beta2: float = 0.99
    """Adam beta2 of the generator's and the discriminator's optimisers (beta1 is 0, as in StyleGAN2)."""

    def validate(self) -> None:
        super().validate()
        g, r, c, reg, ex = self.generator, self.rendering, self.cameras, self.regularisation, self.export
        require_positive(self, "generator.z_dim", "generator.w_dim", "generator.mapping_layers",
                         "generator.plane_channels", "generator.decoder_hidden", "generator.decoder_features",
                         "rendering.num_coarse", "cameras.radius", "cameras.fov", "generator.box_size",
                         "regularisation.r1_every", "regularisation.density_reg_every", "export.mesh_resolution",
                         "rendering.neural_fade_images", "rendering.grad_checkpoint_rays")
        for name, value in (("generator.plane_resolution", g.plane_resolution),
                            ("rendering.neural_resolution", r.neural_resolution)):
            if value < 4 or value & (value - 1):
                raise ConfigError(name, f"must be a power of two >= 4, got {value}")
        if not 0 <= ex.mesh_min_component < 1:
            raise ConfigError("export.mesh_min_component", f"must be in [0, 1), got {ex.mesh_min_component}")
        if isinstance(g.density_blob, str) and g.density_blob != "auto":
            raise ConfigError("generator.density_blob", f"must be a number or 'auto', got {g.density_blob!r}")
        require_positive(self, "generator.background_frequencies")
        if g.density_blob_radius != "auto" and not (isinstance(g.density_blob_radius, (int, float)) and g.density_blob_radius > 0):
            raise ConfigError("generator.density_blob_radius", f"must be a positive number or 'auto', got {g.density_blob_radius!r}")
        if isinstance(ex.mesh_density, str) and ex.mesh_density != "auto":
            raise ConfigError("export.mesh_density", f"must be a number or 'auto', got {ex.mesh_density!r}")
        if g.decoder_features < 3:
            raise ConfigError("generator.decoder_features", "must be >= 3 (the first three are RGB)")
        if r.num_fine < 0:
            raise ConfigError("rendering.num_fine", "must be >= 0")
        if not 0 <= r.ray_near < r.ray_far:
            raise ConfigError("rendering.ray_far", f"must be > ray_near >= 0 (got near {r.ray_near}, far {r.ray_far})")
        if not -90 <= c.elevation_min <= c.elevation_max <= 90:
            raise ConfigError("cameras.elevation_max", "need -90 <= elevation_min <= elevation_max <= 90")
        if c.azimuth_min > c.azimuth_max:
            raise ConfigError("cameras.azimuth_max", "must be >= azimuth_min")
        if r.output_resolution and (r.output_resolution < r.neural_resolution
                                    or r.output_resolution & (r.output_resolution - 1)):
            raise ConfigError("rendering.output_resolution", "must be 0 or a power of two >= neural_resolution")
        if reg.r1_gamma < 0 or reg.density_reg < 0 or self.discriminator.blur_sigma < 0:
            raise ConfigError("regularisation.r1_gamma",
                              "regularisation.r1_gamma, regularisation.density_reg and discriminator.blur_sigma must be >= 0")
