"""Configuration of IG-GAN (``iggan``) and of its proxy-renderer pre-training (``iggan-renderer``), nested by
component as the paper draws the method (Lunz et al. 2020, Fig. 2): the voxel ``generator``, the off-the-shelf
OpenGL renderer R_d (``rendering``), the proxy neural renderer R_phi (``renderer``, with its losses and its
pre-training), the ``discriminator``, the views of generated shapes (``cameras``) and ``export``. Each is a flag group
(``--generator.max-channels 256``, ``--renderer.dom-weight 0``) with its own ``--help`` section; the sizes every
component shares (voxel grid, image size) and Adam's betas stay at the top.

Runs saved before the nesting wrote every field flat (``g_max_channels``); :data:`IGGAN_FLAT_NAMES` and
:data:`IGGAN_RENDERER_FLAT_NAMES` map each flat name to its place, and ``unflat.config.config_from_dict`` moves a
saved run's flat keys there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Mapping

from unflat.config import RunConfig, require_positive
from unflat.errors import ConfigError
from unflat.losses.dom import DomSpace
from unflat.render.gl_backends import RendererBackend

ShapeKind = Literal["cubes", "tables", "mixed"]
RGB = tuple[float, float, float]


# ---- shared by iggan and iggan-renderer ------------------------------------------------------
@dataclass
class OpenGLRenderingConfig:
    """The off-the-shelf renderer R_d: OpenGL draws meshes of binarised voxels; its look must match the training
    images."""

    mesh_color: RGB = (0.7, 0.7, 0.7)
    """RGB in [0,1] of meshes rendered by OpenGL; must match how the training images were rendered."""
    background: RGB = (1.0, 1.0, 1.0)
    """RGB in [0,1] behind rendered meshes; must match the training images."""
    supersample: int = 2
    """OpenGL antialiasing: render at this multiple of the image size and average down; match the dataset's (unflat
    dataset synth/render default: 2)."""
    backend: RendererBackend = "auto"
    """moderngl (the whole batch in one pass), pyrender (one mesh at a time) or auto (moderngl where a headless EGL
    context works, else pyrender). Same pictures."""
    overlap: bool = True
    """Run the proxy renderer's forward pass while OpenGL draws in the renderer's thread (moderngl; same numbers as
    drawing first)."""
    mesh_workers: int = 1
    """No longer used (marching cubes now runs vectorised in PyTorch on the training device); kept so older run
    configs load."""


@dataclass
class ProxyNetConfig:
    """The proxy neural renderer R_phi (RenderNet): voxels resampled into a camera-aligned grid, 3D then 2D residual
    stages. A pre-trained renderer is reused only with equal values of these fields."""

    channels_3d: int = 32
    """Width of the 3D residual stage (paper silent)."""
    channels_2d: int = 256
    """Width of the 2D residual stage (paper silent)."""
    res_blocks_3d: int = 2
    """3D residual blocks (paper: 2)."""
    res_blocks_2d: int = 4
    """2D residual blocks (paper: 4)."""
    camera_grid: Literal["rigid", "perspective"] = "rigid"
    """How voxels enter the proxy: the paper's rigid transform into a camera-aligned grid, or a frustum grid whose
    columns are pixel rays (not in the paper)."""


@dataclass
class ViewsConfig:
    """Views of generated or random shapes."""

    elevation_range: tuple[float, float] = (-30.0, 60.0)
    """Camera elevations (degrees) for views of generated / random shapes (paper, chairs: -30..60)."""


@dataclass
class ProxyRendererConfig(RunConfig):
    """Fields shared by ``iggan`` and ``iggan-renderer``: the voxel grid and image size, the proxy renderer's
    architecture, the off-the-shelf renderer's look and the views of shapes."""

    voxel_resolution: int = 64
    """Voxel grid side R (paper: 64). The camera-frame grid fed to the proxy is 2R (paper: 128)."""
    voxel_extent: float = 1.0
    """Half-size of the voxel box in world units: the grid spans [-extent, extent]^3 around the origin."""
    image_resolution: int = 128
    """Side of rendered and discriminated images (paper: 128). Real images are resized to it."""
    beta1: float = 0.5
    """Adam beta1 of every network (paper silent; DCGAN's 0.5)."""
    beta2: float = 0.999
    """Adam beta2 of every network (paper silent; DCGAN's 0.999)."""
    renderer: ProxyNetConfig = field(default_factory=ProxyNetConfig)
    rendering: OpenGLRenderingConfig = field(default_factory=OpenGLRenderingConfig)
    cameras: ViewsConfig = field(default_factory=ViewsConfig)

    def validate(self) -> None:
        super().validate()
        require_positive(self, "voxel_extent", "renderer.channels_3d", "renderer.channels_2d")
        for name in ("voxel_resolution", "image_resolution"):
            value = getattr(self, name)
            if value < 8 or value & (value - 1):
                raise ConfigError(name, f"must be a power of two >= 8, got {value}")
        for name in ("res_blocks_3d", "res_blocks_2d"):
            if getattr(self.renderer, name) < 0:
                raise ConfigError(f"renderer.{name}", f"must be >= 0, got {getattr(self.renderer, name)}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(name, f"must be in [0, 1), got {getattr(self, name)}")
        lo, hi = self.cameras.elevation_range
        if not -90 <= lo <= hi <= 90:
            raise ConfigError("cameras.elevation_range",
                              f"must satisfy -90 <= lo <= hi <= 90, got {self.cameras.elevation_range}")
        for name in ("mesh_color", "background"):
            if not all(0.0 <= c <= 1.0 for c in getattr(self.rendering, name)):
                raise ConfigError(f"rendering.{name}", "RGB components must lie in [0, 1]")
        if self.rendering.supersample < 1:
            raise ConfigError("rendering.supersample", f"must be >= 1, got {self.rendering.supersample}")
        if self.rendering.mesh_workers < 1:
            raise ConfigError("rendering.mesh_workers", f"must be >= 1, got {self.rendering.mesh_workers}")


def _moved(group: str, names: str, prefix: str = "") -> dict[str, str]:
    """{prefix + name: group.name} for each name: fields that kept their name (after the prefix) in their group."""
    return {prefix + name: f"{group}.{name}" for name in names.split()}


SHARED_FLAT_NAMES: Mapping[str, str] = MappingProxyType({
    **_moved("renderer", "channels_3d channels_2d res_blocks_3d res_blocks_2d", prefix="renderer_"),
    "camera_grid": "renderer.camera_grid",
    **_moved("rendering", "mesh_color background supersample mesh_workers"),
    "renderer_backend": "rendering.backend", "overlap_render": "rendering.overlap",
    "elevation_range": "cameras.elevation_range",
})
"""Flat names of the fields both configs had (in ProxyRendererConfig) -> their dotted place."""


# ---- iggan --------------------------------------------------------------------------------------
@dataclass
class VoxelGeneratorConfig:
    """The voxel generator G (3D-GAN's 3D transposed convolutions): z -> continuous occupancy x_c, and its
    optimiser."""

    z_dim: int = 200
    """Latent size (3D-GAN: 200)."""
    channels: int = 64
    """Width at the last hidden layer (R/2); doubles per coarser level (3D-GAN: 64..512)."""
    max_channels: int = 512
    """Width cap."""
    output_bias: float = 0.0
    """Initial bias of the last layer: initial occupancy sigmoid(bias) (3D-GAN: 0, i.e. 0.5 everywhere; the small
    preset uses -2)."""
    lr: float = 2e-4
    """Adam learning rate (paper: 2e-4)."""


@dataclass
class IGGANProxyConfig(ProxyNetConfig):
    """The proxy neural renderer R_phi in the GAN: its architecture, its loss (L2 to the OpenGL renders plus
    discriminator output matching, Eq. 9) and where its weights start (a pre-trained run, or pre-training on random
    shapes at the start of this run)."""

    lr: float = 2e-5
    """Learning rate during GAN training (paper: 2e-5)."""
    dom_weight: float = 100.0
    """lambda of Eq. (9): weight of discriminator output matching over L2 (paper: 100; 0 = the no-DOM ablation)."""
    dom_space: DomSpace = "d_loss"
    """DOM matches D's outputs as log(1 - D) (D's loss on a generated image, as the paper's introduction describes
    DOM; the default: it beat no DOM by FID in 13 of 16 GPU seeds), as log D (Eq. 8 as printed: diverged in 7 of 9 GPU
    seeds once D won) or as the probability D (unflat's own bounded variant). docs/methods/iggan.md, "DOM: which
    output is matched"."""
    freeze: bool = False
    """Do not train the proxy during GAN training (the paper's "Fixed" ablation; needs a pre-trained renderer)."""
    checkpoint: Path | None = None
    """Pre-trained proxy renderer: an iggan-renderer (or iggan) run directory or checkpoint file."""
    pretrain_steps: int = 0
    """Without --renderer.checkpoint: pre-train the proxy on random shapes for this many steps at the start of this
    run (G and D wait)."""
    pretrain_lr: float = 1e-4
    """Proxy learning rate during in-run pre-training (paper silent)."""
    pretrain_shapes: ShapeKind = "mixed"
    """Random shapes for in-run pre-training: cubes, tables or both (paper: tables or cubes)."""


@dataclass
class IGGANDiscriminatorConfig:
    """The discriminator D (DCGAN with spectral normalisation), what it sees and its optimiser."""

    channels: int = 64
    """Width at the first layer; doubles per halving (DCGAN: 64..512)."""
    max_channels: int = 512
    """Width cap."""
    spectral_norm: bool = True
    """Spectral normalisation (paper: on)."""
    lr: float = 2e-4
    """Adam learning rate (paper: 2e-4)."""
    input: Literal["opengl", "proxy"] = "opengl"
    """What D sees for generated shapes: OpenGL renders of binarised voxels (the method) or proxy renders (Table 2's
    "RenderNet" column)."""
    mask_real_images: Literal["auto", "on", "off"] = "auto"
    """Composite real images over --rendering.background with their masks before D sees them; "auto" = on for
    datasets whose background is not white (photos, `synth --wild`): the voxel generator makes a shape, not a
    scene."""


@dataclass
class IGGANCamerasConfig(ViewsConfig):
    """Views of generated shapes, at each real image's camera distance and field of view."""

    view_range: Literal["full", "limited", "dataset"] = "full"
    """full = all 360 deg of azimuth (elevation from --cameras.elevation-range); limited = the paper's LVP (+-60 deg
    azimuth, 15..60 deg elevation); dataset = the real batch's cameras."""
    limited_azimuth: float = 60.0
    """Half-range of azimuth (degrees, about the +Z front) for view_range=limited (paper: 60)."""
    limited_elevation_range: tuple[float, float] = (15.0, 60.0)
    """Elevation range (degrees) for view_range=limited (paper: 15..60)."""


@dataclass
class VoxelExportConfig:
    """Meshes and renders made by sample / generate / export."""

    threshold: float = 0.5
    """Occupancy level of meshes and renders."""
    mesh_min_component: float = 0.05
    """Exported meshes drop stray voxel pieces whose area is below this fraction of the largest piece (0 keeps
    all)."""


IGGAN_FLAT_NAMES: Mapping[str, str] = MappingProxyType({
    **SHARED_FLAT_NAMES,
    **_moved("generator", "z_dim"),
    **_moved("generator", "channels max_channels output_bias", prefix="g_"),
    "lr_g": "generator.lr",
    **_moved("discriminator", "channels max_channels spectral_norm", prefix="d_"),
    "lr_d": "discriminator.lr", "disc_input": "discriminator.input",
    "mask_real_images": "discriminator.mask_real_images",
    "lr_renderer": "renderer.lr", "freeze_renderer": "renderer.freeze", "renderer_checkpoint": "renderer.checkpoint",
    **_moved("renderer", "dom_weight dom_space pretrain_steps pretrain_lr pretrain_shapes"),
    **_moved("cameras", "view_range limited_azimuth limited_elevation_range"),
    "export_threshold": "export.threshold", "mesh_min_component": "export.mesh_min_component",
})
"""Flat field names of iggan runs saved before the configs nested -> their dotted place."""


@dataclass
class IGGANConfig(ProxyRendererConfig):
    """IG-GAN (Lunz et al. 2020): voxel generator trained through an OpenGL renderer and a proxy neural renderer."""

    flat_names: ClassVar[Mapping[str, str]] = IGGAN_FLAT_NAMES
    # Runs saved before `dom_space` existed trained with log D; they resume and load as they were trained.
    defaults_of_older_runs: ClassVar[Mapping[str, Any]] = MappingProxyType({"renderer": {"dom_space": "log_d"}})

    batch_size: int = 32
    """Images per step (paper silent)."""
    max_steps: int = 100_000
    """Training steps (paper silent)."""
    generator: VoxelGeneratorConfig = field(default_factory=VoxelGeneratorConfig)
    renderer: IGGANProxyConfig = field(default_factory=IGGANProxyConfig)
    discriminator: IGGANDiscriminatorConfig = field(default_factory=IGGANDiscriminatorConfig)
    cameras: IGGANCamerasConfig = field(default_factory=IGGANCamerasConfig)
    export: VoxelExportConfig = field(default_factory=VoxelExportConfig)

    def validate(self) -> None:
        super().validate()
        r = self.renderer
        require_positive(self, "generator.z_dim", "generator.channels", "generator.max_channels",
                         "discriminator.channels", "discriminator.max_channels", "generator.lr", "discriminator.lr",
                         "renderer.lr", "renderer.pretrain_lr")
        if r.dom_weight < 0:
            raise ConfigError("renderer.dom_weight", f"must be >= 0, got {r.dom_weight}")
        if r.pretrain_steps < 0:
            raise ConfigError("renderer.pretrain_steps", f"must be >= 0, got {r.pretrain_steps}")
        if r.freeze and r.checkpoint is None and r.pretrain_steps == 0:
            raise ConfigError("renderer.freeze", "a frozen renderer must be pre-trained: pass --renderer.checkpoint RUN "
                              "(from `unflat train iggan-renderer`) or --renderer.pretrain-steps N")
        ex = self.export
        if isinstance(ex.threshold, str) or not 0 < ex.threshold < 1:
            raise ConfigError("export.threshold", f"must be in (0, 1), got {ex.threshold}")
        if not 0 <= ex.mesh_min_component < 1:
            raise ConfigError("export.mesh_min_component", f"must be in [0, 1), got {ex.mesh_min_component}")
        if not 0 < self.cameras.limited_azimuth <= 180:
            raise ConfigError("cameras.limited_azimuth", f"must be in (0, 180], got {self.cameras.limited_azimuth}")


# ---- iggan-renderer -------------------------------------------------------------------------------
@dataclass
class RandomShapeViewsConfig(ViewsConfig):
    """Views of the random shapes (without --data; with --data each view copies a dataset camera's distance and
    field of view)."""

    radius: float = 3.0
    """Camera distance to the origin (default: `unflat dataset synth`'s)."""
    fov_deg: float = 40.0
    """Vertical field of view in degrees."""


IGGAN_RENDERER_FLAT_NAMES: Mapping[str, str | None] = MappingProxyType({
    **SHARED_FLAT_NAMES,
    "camera_radius": "cameras.radius", "camera_fov_deg": "cameras.fov_deg",
    "mask_real_images": None,  # real images never reach the proxy's pre-training
})
"""Flat field names of iggan-renderer runs saved before the configs nested -> their dotted place (None: dropped)."""


@dataclass
class IGGANRendererConfig(ProxyRendererConfig):
    """Pre-training of IG-GAN's proxy renderer on random shapes (Sec. 3, last paragraph; Sec. 5.3)."""

    flat_names: ClassVar[Mapping[str, str | None]] = IGGAN_RENDERER_FLAT_NAMES

    batch_size: int = 32
    """Random shapes per step."""
    max_steps: int = 20_000
    """Pre-training steps (paper silent)."""
    lr: float = 1e-4
    """Adam learning rate (paper silent)."""
    shapes: ShapeKind = "mixed"
    """Random shapes to pre-train on: unions of boxes ("cubes"), procedural tables, or both."""
    cameras: RandomShapeViewsConfig = field(default_factory=RandomShapeViewsConfig)

    def validate(self) -> None:
        super().validate()
        require_positive(self, "lr", "cameras.radius", "cameras.fov_deg")
        if self.cameras.radius <= math.sqrt(3.0) * self.voxel_extent:
            raise ConfigError("cameras.radius",
                              f"must put the camera outside the voxel box (> {math.sqrt(3) * self.voxel_extent:.2f})")
