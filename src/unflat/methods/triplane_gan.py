"""The tri-plane GAN core shared by `mvtriplane` and `3dgp`.

Generator: class-conditional mapping -> StyleGAN2 synthesis of 3 x C feature planes -> tri-plane
decoder -> volume rendering at the neural resolution -> 2D super-resolution to the output resolution.
Training: non-saturating loss, lazy R1, generator EMA, EG3D's dual discrimination (SR image + raw
render as 6 channels), blur fade-in, density regularisation, neural-resolution fade-in.

Extension points for methods built on this core (3dgp overrides these instead of copying code):

* ``build_generator`` / ``build_discriminator`` (e.g. more discriminator input channels, a feature head);
* ``sample_cameras(n, views, generator)`` - the camera source (a plain ``Cameras`` goes to the generator);
* ``views_per_latent(step)`` - how many views of each latent are rendered and discriminated;
* ``fake_discriminator_input(render)`` / ``real_discriminator_input(batch)`` - what D sees;
* ``extra_generator_loss`` / ``extra_discriminator_loss`` - additional terms and logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function
from torch.utils.checkpoint import checkpoint

from unflat.cameras import Cameras, fov_to_focal, look_at
from unflat.data.augment import random_xflip
from unflat.data.format import Dataset, DatasetInfo
from unflat.data.loader import Batch
from unflat.engine.progress import PhaseProgress
from unflat.engine.ema import ema_beta, make_ema, update_ema
from unflat.errors import ConfigError
from unflat.geometry.foreground import object_density
from unflat.geometry.iso_level import LevelChoice, ray_max_density, silhouette_level
from unflat.geometry.triplane import Aggregation, TriplaneDecoder, density_blob, sample_triplane
from unflat.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from unflat.methods.triplane_config import TriplaneGANConfig  # noqa: F401 - the config lives there
from unflat.methods.base import Generator3D, Invertible, Method, Samples, TrainContext
from unflat.nets.background import SphereBackground
from unflat.nets.stylegan2 import Discriminator, MappingNetwork, NoiseMode, SynthesisNetwork
from unflat.nets.superres import SuperResolution, resize
from unflat.render.triplane_sampling import fused_sample_triplane, fused_sampling_supported
from unflat.render.volume import RayNoise, VolumeOutput, concat_rays, draw_ray_noise, render_rays


AUTO_LEVEL_VIEWS = 4
"""Cameras whose rendered opacity chooses a sample's iso-level (``mesh_density`` "auto")."""
AUTO_LEVEL_RESOLUTION = 64
"""Rays per side of each of those renders."""
WHITE_FOG_DELTA = 0.03
"""On a white background, "auto" matches only pixels whose render differs from white by more than this (about
8/255 in some channel): opaque white fog composited on white looks like background. A shaded surface of the
embedded palettes' whitest colour (ceramic 240/238/230) differs by more."""
SURFACE_COLOUR_VOXELS = 3
"""Vertex colours composite the colour field over this many grid voxels beneath the surface (``colour_surface``)."""
FALLBACK_DENSITY_LEVEL = 10.0
"""EG3D's density level, used when "auto" has nothing opaque to match."""


def resolve_background(cfg: TriplaneGANConfig, info: DatasetInfo) -> str:
    """white | learned | none: the deprecated white_background when a saved run sets it, else --generator.background, with
    "auto" following the data (white-background datasets: white; photos and wild composites: learned)."""
    if cfg.generator.white_background is not None:
        return "white" if cfg.generator.white_background else "none"
    if cfg.generator.background != "auto":
        return cfg.generator.background
    return "white" if info.background == "white" else "learned"


DENSITY_BLOB_AUTO = 5.0
"""The density bias's strength with a learned background for a blob of radius 0.5 (Magic3D uses 10, DreamFusion's
blob 5): raw density 5 at the centre (about 4 after EG3D's shifted softplus), negative beyond the radius. A
smaller blob gets a proportionally stronger bias, so a ray through its centre sees the same optical depth."""


def resolve_density_blob_radius(cfg: TriplaneGANConfig) -> float:
    """Where the density bias crosses zero: --generator.density-blob-radius, "auto" = 0.45 x the frame's half-width
    at the origin for the cameras' radius and fov (the blob then covers about half the frame)."""
    radius = cfg.generator.density_blob_radius
    if radius != "auto":
        return float(radius)
    return 0.45 * cfg.cameras.radius * math.tan(math.radians(cfg.cameras.fov) / 2)


def resolve_density_blob(cfg: TriplaneGANConfig, background: str) -> float:
    """The density blob's strength: --generator.density-blob, with "auto" on only for a learned background (photos
    and wild composites, where the background would otherwise take the whole image)."""
    blob = cfg.generator.density_blob
    if blob == "auto":
        return DENSITY_BLOB_AUTO * max(1.0, 0.5 / resolve_density_blob_radius(cfg)) if background == "learned" else 0.0
    return float(blob)


# ---------------------------------------------------------------------------------------------
# Cameras: whole sphere (or a narrower range), several well-separated views per latent
# ---------------------------------------------------------------------------------------------
def _random_rotations(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """Uniformly distributed rotations [n,3,3] (normalised Gaussian quaternions)."""
    q = F.normalize(torch.randn(n, 4, generator=generator, device=device), dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1).reshape(n, 3, 3)


def spread_directions(views: int) -> Tensor:
    """``views`` unit vectors far apart from each other [V,3]: antipodal pair, equilateral triangle,
    tetrahedron, octahedron, else a Fibonacci sphere."""
    if views == 1:
        return torch.tensor([[0.0, 0.0, 1.0]])
    if views == 2:
        return torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    if views == 3:
        a = torch.arange(3) * (2 * math.pi / 3)
        return torch.stack([torch.sin(a), torch.zeros(3), torch.cos(a)], -1)
    if views == 4:
        return F.normalize(torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]), dim=-1)
    if views == 6:
        return torch.cat([torch.eye(3), -torch.eye(3)])
    i = torch.arange(views, dtype=torch.float32) + 0.5
    y = 1 - 2 * i / views
    r = torch.sqrt(1 - y * y)
    phi = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * torch.sin(phi), y, r * torch.cos(phi)], -1)


def sample_view_cameras(n: int, views: int, radius: float, fov_deg: float,
                        elevation_range: tuple[float, float] = (-90.0, 90.0),
                        azimuth_range: tuple[float, float] = (-180.0, 180.0),
                        perturb_deg: float = 0.0, device: torch.device | str = "cpu",
                        generator: torch.Generator | None = None) -> Cameras:
    """Cameras [n*views] looking at the origin; rows i*V .. i*V+V-1 belong to latent i.

    Whole sphere (the default ranges): each latent's V views are a fixed well-separated set of
    directions under a uniformly random rotation, so every single view is uniform on the sphere and
    the views of one latent are far apart. Narrower ranges: the azimuth range is split into V strata
    (one view each) and elevation is area-uniform within its range. ``perturb_deg`` then tilts each
    direction by a random Gaussian angle. Randomness comes from ``generator`` (CPU) or the global RNG.
    """
    whole = elevation_range[0] <= -90 and elevation_range[1] >= 90 and azimuth_range[1] - azimuth_range[0] >= 360
    if whole:
        rot = _random_rotations(n, torch.device("cpu"), generator)
        dirs = torch.einsum("nij,vj->nvi", rot, spread_directions(views)).reshape(n * views, 3)
    else:
        u = torch.rand(n, views, 2, generator=generator)
        width = (azimuth_range[1] - azimuth_range[0]) / views
        az = azimuth_range[0] + (torch.arange(views) + u[..., 0]) * width
        lo, hi = (math.sin(math.radians(e)) for e in elevation_range)
        el = torch.asin((lo + u[..., 1] * (hi - lo)).clamp(-1, 1))
        az = torch.deg2rad(az)
        dirs = torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], -1).reshape(n * views, 3)
    if perturb_deg > 0:
        tilt = torch.randn(n * views, 3, generator=generator) * math.radians(perturb_deg)
        dirs = F.normalize(dirs + tilt - (tilt * dirs).sum(-1, keepdim=True) * dirs, dim=-1)
    eye = (dirs * radius).to(device)
    focal = fov_to_focal(fov_deg).to(device).expand(n * views)
    half = torch.full_like(focal, 0.5)
    return Cameras(look_at(eye), torch.stack([focal, focal, half, half], -1))


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------
@dataclass
class TriplaneRender:
    """What the generator returns for B cameras.

    image: [B,3,R,R] super-resolved RGB in [-1,1].  image_raw: [B,3,r,r] volume-rendered RGB in [-1,1].
    features: [B,C,r,r] rendered feature image in [-1,1].  depth: [B,1,r,r] camera z (far where empty).
    opacity: [B,1,r,r].  cameras: the cameras used.
    """

    image: Tensor
    image_raw: Tensor
    features: Tensor
    depth: Tensor
    opacity: Tensor
    cameras: Cameras


class TriplaneGenerator(nn.Module):
    """z [B,z_dim] + class one-hot [B,num_classes] + Cameras -> TriplaneRender."""

    def __init__(self, *, z_dim: int, w_dim: int, num_classes: int, mapping_layers: int, plane_resolution: int,
                 plane_channels: int, channel_base: int, channel_max: int, extra_blocks: bool, decoder_hidden: int,
                 decoder_extra_layers: int, decoder_features: int, aggregation: Aggregation, box_size: float,
                 neural_resolution: int, output_resolution: int, sr_channels: int, ray_near: float, ray_far: float,
                 num_coarse: int, num_fine: int, background: str, fused_sampling: bool = False,
                 grad_checkpoint_rays: int = 0, density_blob: float = 0.0, density_blob_radius: float = 0.5,
                 background_frequencies: int = 4) -> None:
        super().__init__()
        self.density_blob, self.density_blob_radius = density_blob, density_blob_radius  # 0 = no foreground prior
        self.fused_sampling = fused_sampling
        self.grad_checkpoint_rays = grad_checkpoint_rays  # 0 = no gradient checkpointing
        self._eager_decoder = False  # set while a checkpointed chunk renders (see render_volume_checkpointed)
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.plane_channels, self.box_size, self.aggregation = plane_channels, box_size, aggregation
        self.neural_resolution, self.output_resolution = neural_resolution, output_resolution
        self.ray_near, self.ray_far, self.num_coarse, self.num_fine = ray_near, ray_far, num_coarse, num_fine
        if background not in ("white", "learned", "none"):
            raise ValueError(f"background must be white, learned or none (resolved), got {background!r}")
        self.background = background
        self.white_background = background == "white"
        self.synthesis = SynthesisNetwork(w_dim, plane_resolution, 3 * plane_channels, channel_base, channel_max, extra_blocks)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, num_classes, w_dim, self.num_ws, num_layers=mapping_layers)
        self.decoder = TriplaneDecoder(plane_channels, decoder_hidden, decoder_features, decoder_extra_layers)
        self.superres = SuperResolution(decoder_features, neural_resolution, output_resolution, w_dim, sr_channels)
        self.far_background = (SphereBackground(w_dim, decoder_features, decoder_hidden, background_frequencies)
                               if background == "learned" else None)

    @classmethod
    def from_config(cls, cfg: TriplaneGANConfig, num_classes: int, output_resolution: int,
                    background: str = "white") -> "TriplaneGenerator":
        """``background``: the resolved choice (``resolve_background``); the density blob follows it
        (``resolve_density_blob``)."""
        return cls(z_dim=cfg.generator.z_dim, w_dim=cfg.generator.w_dim, num_classes=num_classes, mapping_layers=cfg.generator.mapping_layers,
                   plane_resolution=cfg.generator.plane_resolution, plane_channels=cfg.generator.plane_channels,
                   channel_base=cfg.generator.channel_base, channel_max=cfg.generator.channel_max, extra_blocks=cfg.generator.extra_blocks,
                   decoder_hidden=cfg.generator.decoder_hidden, decoder_extra_layers=cfg.generator.decoder_extra_layers,
                   decoder_features=cfg.generator.decoder_features, aggregation=cfg.generator.plane_aggregation, box_size=cfg.generator.box_size,
                   neural_resolution=cfg.rendering.neural_resolution, output_resolution=output_resolution,
                   sr_channels=cfg.rendering.sr_channels, ray_near=cfg.rendering.ray_near, ray_far=cfg.rendering.ray_far,
                   num_coarse=cfg.rendering.num_coarse, num_fine=cfg.rendering.num_fine, background=background,
                   fused_sampling=cfg.rendering.fused_sampling,
                   grad_checkpoint_rays=cfg.rendering.grad_checkpoint_rays if cfg.rendering.grad_checkpoint else 0,
                   density_blob=resolve_density_blob(cfg, background), density_blob_radius=resolve_density_blob_radius(cfg),
                   background_frequencies=cfg.generator.background_frequencies)

    # ---- pieces --------------------------------------------------------------------------------
    def class_onehot(self, class_ids: Tensor | None, batch: int, device: torch.device) -> Tensor:
        """[B] class ids -> [B,num_classes] one-hot ([B,0] when unconditional)."""
        if self.num_classes == 0 or class_ids is None:
            return torch.zeros(batch, self.num_classes, device=device)
        return F.one_hot(class_ids.long().to(device), self.num_classes).float()

    def map(self, z: Tensor, c: Tensor, truncation_psi: float = 1.0, update_w_avg: bool = False) -> Tensor:
        """ws [B,num_ws,w_dim]."""
        return self.mapping(z, c, truncation_psi=truncation_psi, update_w_avg=update_w_avg)

    def planes(self, ws: Tensor, noise_mode: NoiseMode = "random") -> Tensor:
        """Tri-planes [B,3,C,R,R]."""
        img = self.synthesis(ws, noise_mode)
        return img.reshape(img.shape[0], 3, self.plane_channels, img.shape[-2], img.shape[-1])

    def sample_features(self, planes: Tensor, points: Tensor) -> Tensor:
        """planes [B,3,C,R,R], points [B,M,3] -> aggregated plane features [B,M,C] (fused kernel when enabled)."""
        if self.fused_sampling and fused_sampling_supported(planes, points):
            return fused_sample_triplane(planes, points, self.box_size, self.aggregation)
        return sample_triplane(planes, points, self.box_size, self.aggregation)

    def query(self, planes: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """planes [B,3,C,R,R], points [B,M,3] -> colour features [B,M,F] in [0,1], density [B,M,1]."""
        with record_function("unflat/triplane/sample"):
            feats = self.sample_features(planes, points)
        bias = density_blob(points, self.density_blob, self.density_blob_radius) if self.density_blob else None
        with record_function("unflat/triplane/decoder"):
            if self._eager_decoder:  # the class's forward, not a torch.compile'd one set on the instance
                return type(self.decoder).forward(self.decoder, feats, bias)
            return self.decoder(feats, bias)

    @torch.no_grad()
    def density_grid(self, planes: Tensor, resolution: int, half: float, chunk: int = 1 << 21) -> Tensor:
        """Density of one latent's planes [1,3,C,R,R] on the grid of ``marching_cubes.grid_points``
        (``resolution``^3 samples spanning [-half, half] on each axis) -> [R,R,R] on the planes' device.
        Large chunks and no host copies: 256^3 samples are 8 queries of 2M points."""
        from unflat.geometry.marching_cubes import grid_points

        points = grid_points(resolution, (-half, half)).reshape(-1, 3).to(planes.device)
        out = torch.empty(points.shape[0], device=planes.device)
        for start in range(0, points.shape[0], chunk):
            out[start:start + chunk] = self.query(planes, points[None, start:start + chunk])[1][0, :, 0].float()
        return out.reshape(resolution, resolution, resolution)

    def render_volume(self, planes: Tensor, origins: Tensor, dirs: Tensor, perturb: bool = True,
                      noise: RayNoise | None = None) -> VolumeOutput:
        """Volume-render rays origins/dirs [B*V,R,3] through B latents' planes [B,3,C,R,R] (V views each)."""
        b = planes.shape[0]

        def field(points: Tensor) -> tuple[Tensor, Tensor]:
            # The V views of a latent query its planes together (points [B*V,M,3] -> [B,V*M,3]), so the
            # planes are never copied per view.
            feats, density = self.query(planes, points.reshape(b, -1, 3))
            return feats.reshape(points.shape[0], points.shape[1], -1), density.reshape(points.shape[0], points.shape[1], 1)

        return render_rays(field, origins, dirs, self.ray_near, self.ray_far, self.num_coarse, self.num_fine, perturb,
                           noise=noise)

    def render_volume_checkpointed(self, planes: Tensor, origins: Tensor, dirs: Tensor, perturb: bool = True) -> VolumeOutput:
        """``render_volume`` with gradient checkpointing: chunks of ``grad_checkpoint_rays`` rays per image,
        each recomputed in the backward pass. The random numbers are drawn for all rays first (as one
        ``render_volume`` call draws them), so the result and the gradients equal the unchunked ones."""
        n, r, _ = origins.shape
        noise = draw_ray_noise((n, r), self.num_coarse, self.num_fine, perturb, origins.device)
        step = self.grad_checkpoint_rays
        return concat_rays([
            checkpoint(self._render_volume_eager_decoder, planes, origins[:, i:i + step], dirs[:, i:i + step],
                       perturb, noise.rays(slice(i, i + step)), use_reentrant=False)
            for i in range(0, r, step)])

    def _render_volume_eager_decoder(self, planes: Tensor, origins: Tensor, dirs: Tensor, perturb: bool,
                                     noise: RayNoise) -> VolumeOutput:
        """``render_volume`` with the decoder's eager forward. A torch.compile'd decoder saves activations
        in inductor's padded layout ([N,40] for 33 outputs) but its recomputation in the backward pass
        produced unpadded ones ([N,33]): CheckpointError on an H100. The eager decoder recomputes exactly."""
        self._eager_decoder = True
        try:
            return self.render_volume(planes, origins, dirs, perturb, noise)
        finally:
            self._eager_decoder = False

    def render(self, planes: Tensor, ws: Tensor, cameras: Cameras, resolution: int | None = None,
               perturb: bool = True, noise_mode: NoiseMode = "random", chunk: int | None = None) -> TriplaneRender:
        """Render planes/ws of B latents from ``cameras`` (B or B*V of them; V views per latent, grouped)."""
        b = planes.shape[0]
        if len(cameras) % b:
            raise ValueError(f"{len(cameras)} cameras for {b} latents")
        views = len(cameras) // b
        if views > 1:
            ws = ws.repeat_interleave(views, 0)
        res = resolution or self.neural_resolution
        origins, dirs = cameras.rays(res, res)

        if chunk:  # inference: bounded memory
            out = concat_rays([self.render_volume(planes, origins[:, i:i + chunk], dirs[:, i:i + chunk], perturb)
                               for i in range(0, origins.shape[1], chunk)])
        elif self.grad_checkpoint_rays and torch.is_grad_enabled() and planes.requires_grad:
            out = self.render_volume_checkpointed(planes, origins, dirs, perturb)
        else:
            out = self.render_volume(planes, origins, dirs, perturb)
        feats = out.features
        if self.background == "white":
            feats = feats + (1 - out.opacity)
        elif self.far_background is not None:  # the scene at infinity, behind whatever the volume left clear
            with record_function("unflat/G/background"):
                feats = feats + (1 - out.opacity) * self.far_background(dirs, ws[:, 0]).to(feats.dtype)
        n = len(cameras)
        to_image = lambda t: t.transpose(1, 2).reshape(n, -1, res, res)  # noqa: E731
        feature_image = to_image(feats) * 2 - 1
        cos = (dirs * cameras.cam2world[:, None, :3, 2]).sum(-1, keepdim=True)
        depth = to_image(out.depth * cos)
        with record_function("unflat/G/superres"):
            image = self.superres(feature_image, ws[:, -1], noise_mode)
        return TriplaneRender(image.float(), feature_image[:, :3].float(), feature_image, depth, to_image(out.opacity), cameras)

    def forward(self, z: Tensor, c: Tensor, cameras: Cameras, resolution: int | None = None,
                truncation_psi: float = 1.0, noise_mode: NoiseMode = "random", perturb: bool = True) -> TriplaneRender:
        ws = self.map(z, c, truncation_psi)
        return self.render(self.planes(ws, noise_mode), ws, cameras, resolution, perturb, noise_mode)

    @torch.no_grad()
    def mean_w(self, class_id: int | None, num: int = 1000, seed: int = 0) -> Tensor:
        """Average w [w_dim] of ``num`` latents of one class (or of all classes when None)."""
        g = torch.Generator().manual_seed(seed)
        device = self.mapping.w_avg.device
        z = torch.randn(num, self.z_dim, generator=g).to(device)
        ids = (torch.full((num,), class_id) if class_id is not None
               else torch.randint(max(self.num_classes, 1), (num,), generator=g))
        return self.map(z, self.class_onehot(ids, num, device))[:, 0].mean(0)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of [B,C,H,W] (sigma in pixels; <= 0 returns the input)."""
    if sigma <= 0:
        return images
    radius = int(math.ceil(sigma * 3))
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    images = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect" if radius < images.shape[-1] else "replicate"),
                      k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    images = F.conv2d(F.pad(images, (0, 0, radius, radius), mode="reflect" if radius < images.shape[-2] else "replicate"),
                      k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return images


# ---------------------------------------------------------------------------------------------
# The shared method
# ---------------------------------------------------------------------------------------------
class TriplaneGAN(Method, Generator3D, Invertible):
    """Training, sampling, export, generation and inversion for a tri-plane GAN; see module docstring."""

    multiview_generator = True
    export_settings = {"resolution": "export.mesh_resolution", "level": "export.mesh_density",
                       "min_component": "export.mesh_min_component"}
    inference_networks = {"G_ema": "G_ema", "G": "G_ema"}  # a zoo model: the EMA generator (incl. its background)

    Config = TriplaneGANConfig
    cfg: TriplaneGANConfig

    def __init__(self, cfg: TriplaneGANConfig, info: DatasetInfo, ctx: TrainContext) -> None:
        super().__init__(cfg, info, ctx)
        cfg.validate()
        self.output_resolution = cfg.rendering.output_resolution or info.resolution
        if self.output_resolution & (self.output_resolution - 1) or self.output_resolution < 4:
            nearest = 2 ** max(2, int(math.log2(max(self.output_resolution, 4))))
            raise ConfigError("rendering.output_resolution", f"the dataset's images are {info.resolution}px, not a power of two; "
                                                   f"pass e.g. --rendering.output-resolution {nearest} (images are resized)")
        if self.output_resolution < cfg.rendering.neural_resolution:
            raise ConfigError("rendering.neural_resolution", f"must be <= the output resolution {self.output_resolution}")
        self.num_classes = info.num_classes if cfg.generator.class_conditional and info.num_classes > 1 else 0
        self.background = resolve_background(cfg, info)
        self.images_seen = 0
        generator = self.build_generator()
        cl = cfg.generator.channels_last and ctx.device.type == "cuda"
        if cl:
            generator = generator.to(memory_format=torch.channels_last)
        self.G = self.add_network("G", generator)
        self.G_ema = self.add_network("G_ema", make_ema(generator), train=False)
        self.D = self.add_network("D", self.build_discriminator())
        if cl:
            self.D = self.D.to(memory_format=torch.channels_last)
        betas = (0.0, cfg.adam_beta2)
        self.add_optimizer("G", torch.optim.Adam(self.G.parameters(), lr=cfg.generator.lr, betas=betas, eps=1e-8))
        # Lazy regularisation: scale lr and betas so the R1 steps do not change the effective schedule.
        ratio = cfg.regularisation.r1_every / (cfg.regularisation.r1_every + 1) if cfg.regularisation.r1_gamma > 0 else 1.0
        self.add_optimizer("D", torch.optim.Adam(self.D.parameters(), lr=cfg.discriminator.lr * ratio,
                                                 betas=(0.0, cfg.adam_beta2 ** ratio), eps=1e-8))
        self.G_train = self.G
        self.D_train = self.D
        if ctx.compile:
            self.compile_networks()

    def compile_networks(self, mode: str | None = None) -> None:
        """torch.compile the heavy sub-networks' forwards in place (state_dict keys unchanged) and D's
        training view; D's eager copy stays for R1, whose double backward compiled graphs do not support.
        ``mode``: torch.compile's mode (None = default; benchmarks try "max-autotune-no-cudagraphs")."""
        for part in (self.G.synthesis, self.G.superres, self.G.decoder):
            part.forward = torch.compile(part.forward, mode=mode)
        self.D_train = torch.compile(self.D, mode=mode)

    # ---- hooks ---------------------------------------------------------------------------------
    def build_generator(self) -> TriplaneGenerator:
        return TriplaneGenerator.from_config(self.cfg, self.num_classes, self.output_resolution, self.background)

    @property
    def discriminator_channels(self) -> int:
        """6 = SR image + raw render (EG3D's dual discrimination)."""
        return 6

    def build_discriminator(self, feature_dim: int = 0) -> Discriminator:
        cfg = self.cfg
        return Discriminator(self.output_resolution, self.discriminator_channels, self.num_classes, cfg.discriminator.channel_base,
                             cfg.discriminator.channel_max, cfg.discriminator.mapping_layers, cfg.discriminator.mbstd_group, feature_dim)

    def views_per_latent(self, step: int) -> int:
        return 1

    def sample_cameras(self, n: int, views: int = 1, generator: torch.Generator | None = None) -> Cameras:
        """The camera source: ``n * views`` cameras, views of one latent grouped and far apart."""
        cfg = self.cfg
        return sample_view_cameras(n, views, cfg.cameras.radius, cfg.cameras.fov, (cfg.cameras.elevation_min, cfg.cameras.elevation_max),
                                   (cfg.cameras.azimuth_min, cfg.cameras.azimuth_max), cfg.cameras.perturb_deg, self.device, generator)

    def fake_discriminator_input(self, render: TriplaneRender) -> Tensor:
        return torch.cat([render.image, resize(render.image_raw, render.image.shape[-1])], 1)

    def real_discriminator_input(self, batch: Batch) -> Tensor:
        images = resize(batch.images, self.output_resolution)
        raw = resize(resize(images, self.neural_resolution(self.images_seen)), self.output_resolution)
        both = torch.cat([images, raw], 1)
        return random_xflip(both) if self.cfg.discriminator.xflip else both

    def extra_generator_loss(self, render: TriplaneRender, planes: Tensor, batch: Batch, step: int) -> tuple[Tensor | float, dict]:
        return 0.0, {}

    def extra_discriminator_loss(self, real_in: Tensor, fake_in: Tensor, batch: Batch, step: int) -> tuple[Tensor | float, dict]:
        return 0.0, {}

    # ---- schedules -----------------------------------------------------------------------------
    def setting_warnings(self, dataset: Dataset | None) -> list[str]:
        cfg, notes = self.cfg, []
        images = cfg.max_steps * cfg.batch_size * self.ctx.world_size  # what the whole run sees
        if cfg.rendering.neural_resolution_final > 0 and cfg.rendering.neural_fade_images > images:
            notes.append(f"--rendering.neural-fade-images {cfg.rendering.neural_fade_images} > the {images} images this run sees "
                         f"(--max-steps x --batch-size): the rendering resolution ends at {self.neural_resolution(images)}, "
                         f"not {cfg.rendering.neural_resolution_final}; raise --max-steps or lower --rendering.neural-fade-images")
        if cfg.discriminator.blur_sigma > 0 and cfg.discriminator.blur_fade_images > images:
            left = (1.0 - images / cfg.discriminator.blur_fade_images) * cfg.discriminator.blur_sigma
            notes.append(f"--discriminator.blur-fade-images {cfg.discriminator.blur_fade_images} > the {images} images this run sees "
                         f"(--max-steps x --batch-size): the discriminator still blurs by {left:.2g} px at the end; "
                         "raise --max-steps or lower --discriminator.blur-fade-images")
        return notes

    def neural_resolution(self, images_seen: int) -> int:
        cfg = self.cfg
        if cfg.rendering.neural_resolution_final <= 0:
            return cfg.rendering.neural_resolution
        t = min(images_seen / cfg.rendering.neural_fade_images, 1.0)
        return int(round(cfg.rendering.neural_resolution + t * (cfg.rendering.neural_resolution_final - cfg.rendering.neural_resolution)))

    def blur_sigma(self) -> float:
        cfg = self.cfg
        if cfg.discriminator.blur_fade_images <= 0:
            return 0.0
        return max(1.0 - self.images_seen / cfg.discriminator.blur_fade_images, 0.0) * cfg.discriminator.blur_sigma

    # ---- training ------------------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int) -> dict[str, float | Tensor]:
        cfg = self.cfg
        n = len(batch)
        views = self.views_per_latent(step)
        res = self.neural_resolution(self.images_seen)
        sigma = self.blur_sigma()
        c_real = self.G.class_onehot(batch.class_ids, n, self.device)
        c_fake = c_real.repeat_interleave(views, 0)
        logs: dict[str, float | Tensor] = {}

        # Generator: every view of every latent is discriminated; the loss is their average.
        z = torch.randn(n, cfg.generator.z_dim, device=self.device)
        cameras = self.sample_cameras(n, views)
        with self.autocast():
            with record_function("unflat/G/synthesis"):
                ws = self.G_train.map(z, c_real, update_w_avg=True)
                planes = self.G_train.planes(ws)
            render = self.G_train.render(planes, ws, cameras, res)
            fake_in = gaussian_blur(self.fake_discriminator_input(render), sigma)
            with record_function("unflat/D/fake-for-G"):
                loss_g = generator_loss(self.D_train(fake_in, c_fake))
            extra, extra_logs = self.extra_generator_loss(render, planes, batch, step)
            loss_g_total = loss_g + extra
            if cfg.regularisation.density_reg > 0 and self.due(cfg.regularisation.density_reg_every, step):
                with record_function("unflat/density-reg"):
                    loss_density = self.density_regulariser(planes)
                loss_g_total = loss_g_total + cfg.regularisation.density_reg * loss_density
                logs["loss/density_reg"] = loss_density.detach()
        with record_function("unflat/G/backward+step"):
            self.optimize("G", loss_g_total)
        logs.update(extra_logs)

        # Discriminator (reuses this step's fakes, detached) + lazy R1 on the reals.
        do_r1 = cfg.regularisation.r1_gamma > 0 and self.due(cfg.regularisation.r1_every, step)
        real_in = gaussian_blur(self.real_discriminator_input(batch), sigma).detach().requires_grad_(do_r1)
        with self.autocast():
            with record_function("unflat/D/real-r1" if do_r1 else "unflat/D/real"):
                real_logits = (self.D if do_r1 else self.D_train)(real_in, c_real)
            with record_function("unflat/D/fake"):
                fake_logits = self.D_train(fake_in.detach(), c_fake)
            loss_d = discriminator_loss(real_logits, fake_logits)
            extra_d, extra_d_logs = self.extra_discriminator_loss(real_in, fake_in.detach(), batch, step)
            loss_d_total = loss_d + extra_d
        if do_r1:
            with record_function("unflat/D/r1"):
                r1 = r1_penalty(real_logits, real_in)
            loss_d_total = loss_d_total + r1 * (cfg.regularisation.r1_gamma / 2 * cfg.regularisation.r1_every)
            logs["loss/r1"] = r1.detach()
        with record_function("unflat/D/backward+step"):
            self.optimize("D", loss_d_total)
        logs.update(extra_d_logs)

        self.images_seen += n * self.ctx.world_size
        beta = ema_beta(n * self.ctx.world_size, cfg.generator.ema_half_life_images,
                        cfg.generator.ema_ramp if cfg.generator.ema_ramp > 0 else None, self.images_seen)
        with record_function("unflat/G/ema"):
            update_ema(self.G_ema, self.G, beta)
        logs.update({
            "loss/g": loss_g.detach(), "loss/d": loss_d.detach(),
            "d/real": real_logits.detach().mean(), "d/fake": fake_logits.detach().mean(),
            "render/opacity": render.opacity.detach().mean(), "render/resolution": float(res),
            "views_per_latent": float(views), "blur_sigma": sigma,
        })
        return logs

    def density_regulariser(self, planes: Tensor, num_points: int = 1000, distance: float = 0.004) -> Tensor:
        """EG3D's L1 density smoothness: |sigma(x) - sigma(x + eps)| at random points in the box."""
        half = self.cfg.generator.box_size / 2
        pts = (torch.rand(planes.shape[0], num_points, 3, device=self.device) * 2 - 1) * half
        moved = pts + torch.randn_like(pts) * distance * half
        _, d0 = self.G_train.query(planes, pts)
        _, d1 = self.G_train.query(planes, moved)
        return (d0 - d1).abs().mean()

    # ---- state ---------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"images_seen": self.images_seen}

    def load_extra_state(self, state: dict) -> None:
        self.images_seen = int(state.get("images_seen", 0))

    # ---- sampling ------------------------------------------------------------------------------
    def _latents(self, n: int, seed: int, class_ids: Tensor | None) -> tuple[Tensor, Tensor, torch.Generator]:
        """z [n,z_dim], class ids [n] (random unless given; one id is broadcast) and the CPU generator (seeded
        with ``seed``) to draw the cameras from next, so samples are deterministic in the seed."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.cfg.generator.z_dim, generator=g)
        if class_ids is None:
            ids = torch.randint(max(self.num_classes, 1), (n,), generator=g) if self.num_classes > 0 \
                else torch.zeros(n, dtype=torch.long)
        else:
            given = torch.as_tensor(class_ids).reshape(-1)
            ids = given.expand(n) if given.numel() == 1 else given
        return z.to(self.device), ids.long().to(self.device), g

    @torch.no_grad()
    def sample(self, n: int, seed: int, class_ids: Tensor | None = None, cameras: Cameras | None = None,
               chunk: int = 8) -> Samples:
        z, ids, g = self._latents(n, seed, class_ids)
        cameras = self.sample_cameras(n, 1, g) if cameras is None else cameras.to(self.device)
        if len(cameras) != n:
            # multi-view contract (see unflat.data.from_generator): latent i at cameras i*V .. i*V+V-1
            if len(cameras) % n:
                raise ValueError(f"{len(cameras)} cameras for {n} latents: give n or n*V cameras")
            views = len(cameras) // n
            z, ids = z.repeat_interleave(views, 0), ids.repeat_interleave(views, 0)
        G = self.G_ema
        res = self.neural_resolution(self.images_seen)
        parts = []
        for s in range(0, len(z), chunk):
            c = G.class_onehot(ids[s:s + chunk], len(z[s:s + chunk]), self.device)
            with self.autocast():
                parts.append(G(z[s:s + chunk], c, cameras[s:s + chunk], res, self.cfg.export.truncation_psi, "const", perturb=False))
        out = self.output_resolution
        return Samples(
            images=torch.cat([p.image for p in parts]).float().clamp(-1, 1),
            cameras=cameras,
            masks=resize(torch.cat([p.opacity for p in parts]).float(), out).clamp(0, 1),
            depth=resize(torch.cat([p.depth for p in parts]).float(), out),
            class_ids=ids if self.num_classes > 0 else None,
            extras={"image_raw": torch.cat([p.image_raw for p in parts]).float()},
        )

    # ---- geometry ------------------------------------------------------------------------------
    @property
    def object_only_meshes(self) -> bool:
        """Meshes keep the object only (see ``mesh_object_only``)."""
        mode = self.cfg.export.mesh_object_only
        return mode == "on" or (mode == "auto" and self.background != "white")

    @torch.no_grad()
    def planes_for(self, z: Tensor, class_ids: Tensor, generator: TriplaneGenerator | None = None) -> tuple[Tensor, Tensor]:
        G = generator or self.G_ema
        ws = G.map(z, G.class_onehot(class_ids, len(z), self.device), self.cfg.export.truncation_psi)
        return G.planes(ws, "const"), ws

    @torch.no_grad()
    def visible_opacity(self, planes: Tensor, origins: Tensor, dirs: Tensor,
                        generator: TriplaneGenerator | None = None) -> Tensor:
        """Rendered opacity [V,N] of one latent's planes [1,3,C,R,R] along rays [V,N,3], set to 0 on a white
        background where the render is white (within ``WHITE_FOG_DELTA``): what the image shows of the object."""
        G = generator or self.G_ema
        with self.autocast():
            out = concat_rays([G.render_volume(planes, origins[:, s:s + 4096], dirs[:, s:s + 4096], perturb=False)
                               for s in range(0, origins.shape[1], 4096)])
        opacity = out.opacity.float()
        if self.background == "white":  # white fog on white is free to paint: count only what the image shows
            image = out.features[..., :3].float() + (1 - opacity)
            opacity = opacity * ((1 - image).amax(-1, keepdim=True) > WHITE_FOG_DELTA)
        return opacity[..., 0]

    @torch.no_grad()
    def surface_level(self, planes: Tensor, grid: Tensor, generator: TriplaneGenerator | None = None) -> LevelChoice:
        """The density level of one latent's surface: ``mesh_density``, or with "auto" the level whose silhouettes
        match the rendered opacity of planes [1,3,C,R,R] from ``AUTO_LEVEL_VIEWS`` cameras of the training
        distribution (fixed seed; ``geometry/iso_level.py``), on a white background only where the render is not
        white (``WHITE_FOG_DELTA``). grid: its density [M,M,M] (``density_grid``)."""
        G = generator or self.G_ema
        fixed = self.cfg.export.mesh_density
        if fixed == "auto":
            with self.full_frame():
                cams = self.sample_cameras(AUTO_LEVEL_VIEWS, 1, torch.Generator().manual_seed(0))
            origins, dirs = cams.rays(AUTO_LEVEL_RESOLUTION, AUTO_LEVEL_RESOLUTION)  # [V,N,3]
            opacity = self.visible_opacity(planes, origins, dirs, G)
            max_density = ray_max_density(grid, self.cfg.generator.box_size / 2, origins.reshape(-1, 3), dirs.reshape(-1, 3),
                                          self.cfg.rendering.ray_near, self.cfg.rendering.ray_far)
            choice = silhouette_level(max_density, opacity.reshape(-1))
            if choice is not None:
                return choice
            fixed = FALLBACK_DENSITY_LEVEL  # nothing opaque to match (an untrained generator)
        level = float(fixed)
        if not grid.min() < level < grid.max():
            level = float(grid.mean())  # an untrained/sparse field never reaches the level: take its mean
        empty = torch.zeros(0)
        return LevelChoice(level, float("nan"), empty, empty)

    @torch.no_grad()
    def colour_surface(self, mesh, planes: Tensor, generator: TriplaneGenerator | None = None, depth: float = 0.05,
                       samples: int = 8, chunk: int = 8192):
        """A copy of ``mesh`` with vertex colours as a camera looking at each vertex along its normal sees them: the
        volume-rendered colour (normalised by opacity) of a ray from the vertex ``depth`` world units inwards. The
        colour field exactly at the iso-surface is often the thin, pale edge of the object (or white fog); the
        rendering composites what lies just beneath it."""
        import trimesh

        from unflat.render.volume import render_rays

        G = generator or self.G_ema
        verts = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32, device=self.device)
        normals = torch.nn.functional.normalize(
            torch.as_tensor(np.array(mesh.vertex_normals), dtype=torch.float32, device=self.device), dim=-1)
        field = lambda pts: G.query(planes, pts)  # noqa: E731
        rgb = torch.empty(len(verts), 3, device=self.device)
        for s in range(0, len(verts), chunk):
            out = render_rays(field, verts[None, s:s + chunk], -normals[None, s:s + chunk], 0.0, depth, samples,
                              0, perturb=False)
            colour = out.features[0, :, :3].float() / out.opacity[0].float().clamp_min(1e-4)
            at_vertex = G.query(planes, verts[None, s:s + chunk])[0][0, :, :3].float()
            rgb[s:s + chunk] = torch.where(out.opacity[0] > 1e-3, colour, at_vertex)  # nothing beneath: the field's own
        rgba = np.concatenate([np.rint(rgb.clamp(0, 1).cpu().numpy() * 255), np.full((len(rgb), 1), 255)], 1).astype(np.uint8)
        return trimesh.Trimesh(vertices=mesh.vertices.copy(), faces=mesh.faces.copy(), vertex_colors=rgba, process=False)

    @torch.no_grad()
    def mesh_from_planes(self, planes: Tensor, generator: TriplaneGenerator | None = None):
        """Marching cubes on the density of one latent's planes [1,3,C,R,R] -> trimesh with vertex colours; the
        level chosen (``surface_level``) is in ``mesh.metadata["iso_level"]`` (and its silhouette IoU)."""
        from unflat.geometry.marching_cubes import extract_mesh
        from unflat.geometry.mesh_ops import drop_small_components

        G = generator or self.G_ema
        half = self.cfg.generator.box_size / 2
        grid = G.density_grid(planes, self.cfg.export.mesh_resolution, half)
        choice = self.surface_level(planes, grid, G)
        level = choice.level
        if self.object_only_meshes:
            grid = object_density(grid, level, half, radius=1.0, gap=max(1, round(0.02 * self.cfg.export.mesh_resolution)))
        mesh = drop_small_components(extract_mesh(grid, level, (-half, half), inside="above"), self.cfg.export.mesh_min_component)
        if len(mesh.faces) > 0:
            mesh = self.colour_surface(mesh, planes, G, depth=SURFACE_COLOUR_VOXELS * 2 * half / self.cfg.export.mesh_resolution)
        mesh.metadata.update({"iso_level": level, "silhouette_iou": choice.iou})
        return mesh

    @torch.no_grad()
    def export(self, out_dir: Path, num: int, seed: int, class_id: int | None = None,
               formats: tuple[str, ...] = ("glb",)) -> list[Path]:
        from unflat.export.pipeline import MeshFiles, mesh_stem

        out_dir = Path(out_dir)
        ids = None if class_id is None else torch.full((num,), int(class_id))
        z, ids, _ = self._latents(num, seed, ids)
        settings = {"resolution": self.cfg.export.mesh_resolution, "level": self.cfg.export.mesh_density,
                    "min_component": self.cfg.export.mesh_min_component, "object_only": self.object_only_meshes}
        with (MeshFiles(out_dir, formats, settings) as files,
              PhaseProgress(f"meshes ({self.cfg.export.mesh_resolution}^3 marching cubes)", num, "meshes") as bar):
            for i in range(num):
                planes, _ = self.planes_for(z[i:i + 1], ids[i:i + 1])
                mesh = self.mesh_from_planes(planes)
                bar.advance()
                if len(mesh.faces) > 0:
                    files.write(mesh, mesh_stem(i, int(ids[i])))
        return files.paths

    # ---- generate: grids, depth, meshes, videos ------------------------------------------------
    @torch.no_grad()
    def generate(self, out_dir: Path, num: int, seed: int, class_id: int | None = None, meshes: bool = True,
                 videos: bool = True, video_frames: int = 24) -> list[Path]:
        """Per-class sample grids (+ depth), GLB meshes, a turntable, latent and class interpolation videos."""
        from unflat.export.images import depth_to_image, save_grid, save_interpolation_video, save_turntable

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        classes = [class_id] if class_id is not None else (list(range(self.num_classes)) or [None])
        for k in classes:
            ids = None if k is None else torch.full((num,), int(k))
            samples = self.sample(num, seed, ids)
            tag = "all" if k is None else f"class{k}_{self._class_name(k)}"
            written.append(save_grid(samples.images, out_dir / f"samples_{tag}.png", value_range=(-1, 1)))
            written.append(save_grid(depth_to_image(samples.depth, samples.masks), out_dir / f"depth_{tag}.png", value_range=(0, 1)))
            np.save(out_dir / f"depth_{tag}.npy", samples.depth.cpu().numpy())
            written.append(out_dir / f"depth_{tag}.npy")
            if meshes:  # all classes: one mesh each; one class: up to four
                written += self.export(out_dir / "meshes" / tag, min(num, 4 if len(classes) == 1 else 1), seed, k)
        if videos:
            z, ids, _ = self._latents(2, seed, None if class_id is None else torch.full((2,), int(class_id)))
            cam = self.sample_cameras(1, 1, torch.Generator().manual_seed(seed))
            frames = [self._render_w(self._interp_ws(z[0], z[1], ids[0], ids[0], t), cam)
                      for t in torch.linspace(0, 1, video_frames).tolist()]
            written.append(save_interpolation_video(frames, out_dir / "interp_latent.gif", boomerang=True, value_range=(-1, 1)))
            if self.num_classes > 1:
                a = int(ids[0]) if class_id is not None else 0
                b = (a + 1) % self.num_classes
                frames = [self._render_w(self._interp_ws(z[0], z[0], torch.tensor(a), torch.tensor(b), t), cam)
                          for t in torch.linspace(0, 1, video_frames).tolist()]
                written.append(save_interpolation_video(frames, out_dir / "interp_class.gif", boomerang=True, value_range=(-1, 1)))
            planes, ws = self.planes_for(z[:1], ids[:1])
            render_fn = lambda cams: (self.G_ema.render(planes, ws, cams.to(self.device), self.neural_resolution(self.images_seen),  # noqa: E731
                                                        perturb=False, noise_mode="const").image.clamp(-1, 1) + 1) / 2
            written.append(save_turntable(render_fn, out_dir / "turntable.gif", frames=video_frames,
                                          radius=self.cfg.cameras.radius, fov=self.cfg.cameras.fov, device=self.device))
        return written

    def _class_name(self, k: int) -> str:
        names = self.info.class_names
        return names[k].replace("/", "_").replace(" ", "_") if k < len(names) else str(k)

    def _interp_ws(self, z0: Tensor, z1: Tensor, c0: Tensor, c1: Tensor, t: float) -> Tensor:
        """ws for a point between (z0, class c0) and (z1, class c1): slerp in z, lerp in the class one-hot."""
        G = self.G_ema
        z = _slerp(z0, z1, t)[None]
        oh0 = G.class_onehot(c0.reshape(1), 1, self.device)
        oh1 = G.class_onehot(c1.reshape(1), 1, self.device)
        return G.map(z, oh0.lerp(oh1, t), self.cfg.export.truncation_psi)

    def _render_w(self, ws: Tensor, cameras: Cameras) -> Tensor:
        G = self.G_ema
        return G.render(G.planes(ws, "const"), ws, cameras, self.neural_resolution(self.images_seen),
                        perturb=False, noise_mode="const").image.clamp(-1, 1)

    # ---- inversion -----------------------------------------------------------------------------
    def invert(self, images: list[Path], out_dir: Path, steps_w: int = 500, steps_g: int = 350, **kwargs) -> list[Path]:
        """PTI inversion of each image; see ``unflat.methods.pti.invert_images``."""
        from unflat.methods.pti import invert_images

        return invert_images(self, images, Path(out_dir), steps_w=steps_w, steps_g=steps_g, **kwargs)

    def invert_tensor(self, target: Tensor, feature_fn=None, classifier=None, label: str = "PTI", **settings):
        """PTI of one image [1,3,R,R] in [-1,1] -> ``unflat.methods.pti.PTIResult``; see ``invert_image``
        (``label`` starts its progress lines)."""
        from unflat.methods.pti import PTISettings, invert_image

        return invert_image(self, target, PTISettings(**settings), feature_fn, classifier, label)


def _slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    an, bn = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    omega = torch.acos((an * bn).sum().clamp(-1 + 1e-6, 1 - 1e-6))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
