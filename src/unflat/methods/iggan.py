"""IG-GAN: 3D voxel shapes from unposed 2D images through an off-the-shelf renderer (Lunz et al. 2020).

Two registered methods:

* ``iggan``: the GAN. A 3D-conv generator makes continuous voxels x_c; each is binarised with a
  global threshold tau ~ U[0,1], meshed and rendered by OpenGL (R_d, non-differentiable) for the
  discriminator; a RenderNet-style proxy R_phi, trained with L2 to the OpenGL images plus
  discriminator output matching (DOM, weight 100), carries the discriminator's gradient back to
  the generator. D, R_phi and G are updated once each per step (1:1:1).
* ``iggan-renderer``: pre-training of the proxy renderer on random shapes (cubes, tables) that it
  makes itself; its run directory is what ``iggan --renderer.checkpoint`` expects.

Equations, hyper-parameters and their sources: docs/methods/iggan.md.
"""

from __future__ import annotations

import math
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor

from unflat.cameras import Cameras
from unflat.config import field_value, migrate_flat_keys, nest_dotted_keys
from unflat.data.appearance import is_coloured
from unflat.data.format import Dataset, DatasetInfo
from unflat.data.loader import Batch
from unflat.engine.progress import PhaseProgress
from unflat.errors import ConfigError, UserError
from unflat.losses.adversarial import discriminator_loss, generator_loss
from unflat.losses.dom import dom_loss
from unflat.methods.base import Generator3D, Method, Samples, TrainContext
from unflat.methods.iggan_config import (IGGANConfig, IGGANDiscriminatorConfig, IGGANProxyConfig,
                                         IGGANRendererConfig, ProxyNetConfig, ProxyRendererConfig, ShapeKind,
                                         VoxelGeneratorConfig)
from unflat.methods.registry import get_method_spec, register_method
from unflat.nets.dcgan import DCGANDiscriminator
from unflat.nets.rendernet import RenderNet, camera_frame_grid, sample_camera_frame
from unflat.nets.voxel_generator import VoxelGenerator
from unflat.render.base import RenderOutput
from unflat.render.voxel_pipeline import VoxelRenderPipeline, binarise, sample_thresholds, voxels_to_meshes

# =============================================================================================
# Random shapes for renderer pre-training
# =============================================================================================
def _grid(resolution: int, extent: float, device: torch.device | str = "cpu") -> Tensor:
    """World coordinates of the voxel samples, [R,R,R,3] in (X, Y, Z) axis order."""
    axis = torch.linspace(-extent, extent, resolution, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)


def _inside_boxes(points: Tensor, centres: Tensor, half: Tensor) -> Tensor:
    """points [P,3], centres/half [K,3] -> bool [P] inside any box."""
    return ((points[:, None, :] - centres[None]).abs() <= half[None]).all(-1).any(-1)


def random_shapes(n: int, resolution: int, kind: ShapeKind = "mixed", extent: float = 1.0,
                  device: torch.device | str = "cpu") -> Tensor:
    """Random binary voxel shapes [n,1,R,R,R] in {0,1}, drawn with the global torch RNG.

    cubes: a union of 1-3 boxes of random size and position; tables: a top slab on four legs or a
    pedestal. Each shape is turned by a random yaw about +Y so that edges are not always grid-aligned.
    Parts are at least one voxel thick so they survive meshing.
    """
    pts = _grid(resolution, extent).reshape(-1, 3)
    voxel = 2.0 * extent / (resolution - 1)
    out = torch.zeros(n, resolution**3)
    for i in range(n):
        use_table = kind == "tables" or (kind == "mixed" and bool(torch.rand(()) < 0.5))
        yaw = float(torch.rand(()) * 2 * math.pi)
        c, s = math.cos(yaw), math.sin(yaw)
        rot = torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
        local = pts @ rot.T / extent  # shape designed in the unit box, then scaled by extent
        if use_table:
            centres, half = _table_boxes(voxel / extent)
        else:
            k = int(torch.randint(1, 4, ()))
            centres = (torch.rand(k, 3) - 0.5) * 0.8
            half = torch.rand(k, 3) * 0.45 + max(0.1, voxel / extent)
        out[i] = _inside_boxes(local, centres, half).float()
    return out.reshape(n, 1, resolution, resolution, resolution).to(device)


def _table_boxes(voxel: float) -> tuple[Tensor, Tensor]:
    """Boxes (centres, half sizes) [K,3] of a random table in the unit box; ``voxel`` = voxel size."""
    u = torch.rand(8)
    top_half = torch.stack([0.35 + 0.5 * u[0], torch.tensor(max(0.03 + 0.05 * float(u[1]), voxel)), 0.35 + 0.5 * u[2]])
    top_y = -0.2 + 0.6 * u[3]
    floor = -0.9
    leg_len = (top_y - top_half[1] - floor) / 2
    leg_y = floor + leg_len
    leg_w = max(0.04 + 0.08 * float(u[4]), voxel)
    centres = [torch.stack([torch.tensor(0.0), top_y, torch.tensor(0.0)])]
    halves = [top_half]
    if u[5] < 0.7:  # four legs, inset from the corners
        for sx in (-1, 1):
            for sz in (-1, 1):
                centres.append(torch.stack([sx * (top_half[0] - leg_w), leg_y, sz * (top_half[2] - leg_w)]))
                halves.append(torch.tensor([leg_w, float(leg_len), leg_w]))
    else:  # pedestal and foot
        centres.append(torch.stack([torch.tensor(0.0), leg_y, torch.tensor(0.0)]))
        halves.append(torch.tensor([leg_w * 1.5, float(leg_len), leg_w * 1.5]))
        centres.append(torch.tensor([0.0, floor + voxel, 0.0]))
        halves.append(torch.tensor([0.3 + 0.2 * float(u[6]), voxel, 0.3 + 0.2 * float(u[6])]))
    return torch.stack(centres), torch.stack(halves)


# =============================================================================================
# Shared pieces
# =============================================================================================
def _camera_stats(cameras: Cameras) -> tuple[Tensor, Tensor]:
    """Per-camera distance to the origin [B] and vertical field of view in degrees [B]."""
    return cameras.cam2world[:, :3, 3].norm(dim=-1), cameras.fov_deg


def sample_views(n: int, radius: Tensor | float, fov_deg: Tensor | float, azimuth_range: tuple[float, float],
                 elevation_range: tuple[float, float], generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> Cameras:
    """n orbit cameras looking at the origin, azimuth and elevation uniform in degrees (Sec. 4.2)."""
    u = torch.rand(n, 2, generator=generator)
    az = azimuth_range[0] + u[:, 0] * (azimuth_range[1] - azimuth_range[0])
    el = elevation_range[0] + u[:, 1] * (elevation_range[1] - elevation_range[0])
    radius = torch.as_tensor(radius, dtype=torch.float32).cpu().expand(n)
    fov = torch.as_tensor(fov_deg, dtype=torch.float32).cpu().expand(n)
    return Cameras.from_orbit(az, el, radius, fov).to(device)


def build_renderer(cfg: ProxyRendererConfig) -> RenderNet:
    return RenderNet(
        grid_resolution=2 * cfg.voxel_resolution,
        image_resolution=cfg.image_resolution,
        channels_3d=cfg.renderer.channels_3d,
        channels_2d=cfg.renderer.channels_2d,
        res_blocks_3d=cfg.renderer.res_blocks_3d,
        res_blocks_2d=cfg.renderer.res_blocks_2d,
    )


def build_pipeline(cfg: ProxyRendererConfig) -> VoxelRenderPipeline:
    gl = cfg.rendering
    return VoxelRenderPipeline(cfg.image_resolution, extent=cfg.voxel_extent, background=gl.background,
                               color=gl.mesh_color, supersample=gl.supersample, backend=gl.backend)


ARCHITECTURE_FIELDS = ("voxel_resolution", "image_resolution", "renderer.channels_3d", "renderer.channels_2d",
                       "renderer.res_blocks_3d", "renderer.res_blocks_2d")
"""The (dotted) config fields a pre-trained proxy renderer's weights depend on."""


def trained_architecture(method: str | None, config_yaml: str) -> dict[str, Any]:
    """The ARCHITECTURE_FIELDS that a run's saved config (nested, or flat from before the nesting) names."""
    cls = IGGANRendererConfig if method == "iggan-renderer" else IGGANConfig
    trained = migrate_flat_keys(cls, nest_dotted_keys(yaml.safe_load(config_yaml) or {}))
    found: dict[str, Any] = {}
    for path in ARCHITECTURE_FIELDS:
        value: Any = trained
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            found[path] = value
    return found


def load_renderer_state(path: Path) -> tuple[dict[str, Tensor], dict]:
    """The proxy renderer's weights from an iggan-renderer / iggan run directory or checkpoint file,
    plus the architecture fields of the run that trained it (empty for a bare state dict).

    Loads with ``torch.load(weights_only=True)`` only. A bare state dict file (``torch.save(renderer
    .state_dict(), ...)``) is accepted too.
    """
    path = Path(path)
    file = path / "checkpoints" / "latest.pt" if path.is_dir() else path
    if not file.exists():
        raise UserError(f"--renderer.checkpoint: {file} not found (expected an `unflat train iggan-renderer` run directory or a checkpoint file)")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (unpickling refusals, truncated files)
        raise UserError(f"--renderer.checkpoint: cannot load {file} safely: {str(exc).splitlines()[0]}") from None
    if isinstance(payload, dict) and "method_state" in payload:
        networks = payload["method_state"].get("networks", {})
        if "renderer" not in networks:
            raise UserError(f"--renderer.checkpoint: {file} (method {payload.get('method')!r}) has no 'renderer' network")
        return networks["renderer"], trained_architecture(payload.get("method"), payload.get("config_yaml", ""))
    if isinstance(payload, dict) and payload and all(isinstance(v, Tensor) for v in payload.values()):
        return payload, {}
    raise UserError(f"--renderer.checkpoint: {file} is neither an unflat checkpoint nor a renderer state dict")


def proxy_pretrain_loss(method: "_ProxyMethodMixin", n: int, radius: Tensor | float, fov_deg: Tensor | float,
                        kind: ShapeKind) -> Tensor:
    """Eq. (5) on random shapes: squared L2 error (Eq. 5 reduction) between proxy and OpenGL renders of n random
    binary shapes, each seen from a random view (azimuth 360 deg, elevation in the config's range)
    at distance ``radius`` and field of view ``fov_deg`` (scalars or [n]). Uses the global RNG."""
    cfg = method.cfg
    radius = torch.as_tensor(radius, dtype=torch.float32).cpu()
    fov_deg = torch.as_tensor(fov_deg, dtype=torch.float32).cpu()
    views = sample_views(n, radius, fov_deg, (-180.0, 180.0), cfg.cameras.elevation_range, device=method.device)
    shapes = random_shapes(n, cfg.voxel_resolution, kind, cfg.voxel_extent, device=method.device)
    target = method.pipeline.images(shapes, views, 0.5)
    with method.autocast():
        rendered = method.proxy_render(shapes, views).float()
    return squared_l2(rendered, target)


def squared_l2(images: Tensor, target: Tensor) -> Tensor:
    """Eq. (5)'s ||R_phi(x_d) - R_d(x_d)||_2^2: squared error summed over each image's pixels and
    channels (images in [-1,1]), averaged over the batch."""
    return (images - target).square().flatten(1).sum(1).mean()


class _ProxyMethodMixin:
    """What both IG-GAN methods do with the proxy renderer."""

    cfg: ProxyRendererConfig
    renderer: RenderNet
    pipeline: VoxelRenderPipeline
    device: torch.device

    def camera_grid(self, cameras: Cameras) -> Tensor:
        """Where the camera-frame grid (2R)^3 samples the voxel grid: [B,2R,2R,2R,3] (see nets.rendernet)."""
        return camera_frame_grid(cameras.to(self.device), self.cfg.voxel_extent, 2 * self.cfg.voxel_resolution,
                                 perspective=self.cfg.renderer.camera_grid == "perspective")

    def proxy_render(self, voxels: Tensor, cameras: Cameras) -> Tensor:
        """R_phi: voxels [B,1,R,R,R] -> images [B,3,S,S] in [-1,1], through the camera-frame grid."""
        return self.renderer(sample_camera_frame(voxels, self.camera_grid(cameras)))


# =============================================================================================
# IG-GAN
# =============================================================================================
@dataclass
class Fakes:
    """One step's generated shapes: x_c [B,1,R,R,R] (with G's graph), cameras, thresholds tau [B],
    x_d = [x_c > tau], both resampled into the camera frame ([B,1,2R,2R,2R]; x_c's with G's graph),
    and the OpenGL images R_d(x_d) [B,3,S,S] in [-1,1]."""

    voxels: Tensor
    cameras: Cameras
    thresholds: Tensor
    binary: Tensor
    volume: Tensor
    volume_binary: Tensor
    opengl: Tensor | None = None


OBJECT_GAP_VOXELS = 1
"""Exported voxel meshes keep occupied voxels within this many voxels of the object's piece (a leg one empty voxel
from its seat stays)."""


@register_method("iggan", config=IGGANConfig,
                 description="IG-GAN: voxel shapes from unposed images through OpenGL + a proxy neural renderer (Lunz et al. 2020)",
                 presets=lambda: {"tiny": iggan_tiny, "small": iggan_small, "paper": iggan_paper})
class IGGAN(_ProxyMethodMixin, Method, Generator3D):
    """Generator G, proxy renderer R_phi, discriminator D; OpenGL in the loop."""

    multiview_generator = True
    console_hidden_metrics = ("opengl_faces", "opengl_prepare", "opengl_upload", "opengl_draw", "opengl_readback")
    export_settings = {"level": "export.threshold", "min_component": "export.mesh_min_component"}  # resolution: the voxels'
    inference_networks = {"G": "G", "renderer": "renderer"}  # a zoo model: the voxel generator (+ proxy renderer for sample)

    def __init__(self, cfg: IGGANConfig, info: DatasetInfo, ctx: TrainContext) -> None:
        super().__init__(cfg, info, ctx)
        self.cfg: IGGANConfig = cfg
        g, d, proxy = cfg.generator, cfg.discriminator, cfg.renderer
        self.G = self.add_network("G", VoxelGenerator(g.z_dim, cfg.voxel_resolution, g.channels, g.max_channels,
                                                      g.output_bias))
        self.renderer = self.add_network("renderer", build_renderer(cfg))
        self.D = self.add_network("D", DCGANDiscriminator(cfg.image_resolution, d.channels, d.max_channels,
                                                          spectral_norm=d.spectral_norm))
        # A resumed or loaded run restores its own renderer weights right after construction, so a
        # pre-trained renderer that has since moved is only an error when a fresh run starts training.
        self.missing_renderer_checkpoint: Path | None = None
        if proxy.checkpoint is not None and not Path(proxy.checkpoint).exists():
            self.missing_renderer_checkpoint = Path(proxy.checkpoint)
        elif proxy.checkpoint is not None:
            state, trained = load_renderer_state(proxy.checkpoint)
            differ = {k: v for k, v in trained.items() if field_value(cfg, k) != v}
            if differ:
                flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in differ.items())
                raise ConfigError("renderer.checkpoint", f"was trained with a different renderer; add {flags} "
                                  "(or pre-train one for this config)")
            try:
                self.renderer.load_state_dict(state)
            except RuntimeError as exc:
                raise ConfigError("renderer.checkpoint", "its renderer does not fit this config (voxel_resolution, "
                                  "image_resolution and the renderer.* architecture must equal the pre-training "
                                  "run's): " + str(exc).splitlines()[0]) from None
        # torch.compile'd views for the training step when --compile is set (weights are shared).
        self.G_step, self.renderer_step, self.D_step = (self.maybe_compile(m) for m in (self.G, self.renderer, self.D))
        betas = (cfg.beta1, cfg.beta2)
        self.add_optimizer("D", torch.optim.Adam(self.D.parameters(), lr=d.lr, betas=betas))
        # In-run pre-training (only without a pre-trained renderer) runs at its own learning rate.
        self.pretraining_steps = proxy.pretrain_steps if proxy.checkpoint is None else 0
        ratio = proxy.pretrain_lr / proxy.lr
        self.add_optimizer("renderer", torch.optim.Adam(self.renderer.parameters(), lr=proxy.lr, betas=betas),
                           schedule=lambda step: ratio if step < self.pretraining_steps else 1.0)
        self.add_optimizer("G", torch.optim.Adam(self.G.parameters(), lr=g.lr, betas=betas))
        self.pipeline = build_pipeline(cfg)
        # Camera distance / FoV for views of generated shapes outside training (sample, generate):
        # the latest real batch's medians, checkpointed so a loaded run needs no dataset.
        self.view_radius, self.view_fov_deg = 3.0, 40.0

    # ---- views ------------------------------------------------------------------------------
    def azimuth_elevation_ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        views = self.cfg.cameras
        if views.view_range == "limited":
            return (-views.limited_azimuth, views.limited_azimuth), views.limited_elevation_range
        return (-180.0, 180.0), views.elevation_range

    def fake_cameras(self, real_cameras: Cameras) -> Cameras:
        """Views for this step's generated shapes: sampled from the view range at each real camera's
        distance and field of view, or the real cameras themselves (view_range=dataset)."""
        if self.cfg.cameras.view_range == "dataset":
            return real_cameras
        radius, fov = _camera_stats(real_cameras)
        az, el = self.azimuth_elevation_ranges()
        return sample_views(len(real_cameras), radius.cpu(), fov.cpu(), az, el, device=self.device)

    # ---- training ---------------------------------------------------------------------------
    def real_images(self, batch: Batch) -> Tensor:
        """Real images [B,3,S,S] in [-1,1] at the discriminator's resolution."""
        images = batch.images
        size = self.cfg.image_resolution
        mode = self.cfg.discriminator.mask_real_images
        if mode == "on" or (mode == "auto" and self.info.background != "white"):
            if batch.masks is None:
                raise UserError("iggan: this dataset's images show a background and it has no masks to cut the "
                                "objects out; make it with masks (dataset images --crop object) or pass "
                                "--discriminator.mask-real-images off")
            background = torch.tensor(self.cfg.rendering.background, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
            images = images * batch.masks + (background * 2 - 1) * (1 - batch.masks)
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return images

    def make_fakes(self, cameras: Cameras) -> Fakes:
        """x_c = G(z), z ~ N(0, I); tau ~ U[0,1]; x_d = [x_c > tau] (Eq. 1, Sec. 4.1)."""
        n = len(cameras)
        z = torch.randn(n, self.cfg.generator.z_dim, device=self.device)
        with self.autocast():
            voxels = self.G_step(z).float()
        thresholds = sample_thresholds(n, self.device)
        binary = binarise(voxels.detach(), thresholds)
        grid = self.camera_grid(cameras)  # one resampling grid for x_c and x_d
        return Fakes(voxels, cameras, thresholds, binary, sample_camera_frame(voxels, grid),
                     sample_camera_frame(binary, grid))

    def start_opengl(self, fakes: Fakes) -> "Future[RenderOutput]":
        """Start y = R_d(x_d): marching cubes on the method's device, then drawing (in the renderer's
        thread with moderngl). ``finish_opengl`` waits for it."""
        return self.pipeline.render_async(fakes.binary, fakes.cameras, 0.5)

    def finish_opengl(self, fakes: Fakes, pending: "Future[RenderOutput]") -> Tensor:
        """fakes.opengl = the drawn images, [B,3,S,S] in [-1,1] on the method's device, rounded to 8 bits
        like every unflat dataset's images (so D cannot tell them apart by quantisation)."""
        rgb = pending.result().rgb
        fakes.opengl = (torch.round(rgb * 255.0) / 127.5 - 1.0).to(self.device)
        return fakes.opengl

    def render_opengl(self, fakes: Fakes) -> Tensor:
        """y = R_d(x_d): marching cubes + OpenGL, start to finish (see ``finish_opengl``)."""
        return self.finish_opengl(fakes, self.start_opengl(fakes))

    def update_discriminator(self, real: Tensor, fakes: Fakes) -> dict[str, float]:
        """max_phi E log D(y_real) + E log(1 - D(y_fake)) (Eq. 2), y_fake = OpenGL renders by default."""
        with torch.no_grad(), self.autocast():
            fake = fakes.opengl if self.cfg.discriminator.input == "opengl" else self.renderer_step(fakes.volume.detach())
        with self.autocast():
            logits = self.D_step(torch.cat([real, fake.to(real.dtype)])).float()
        real_logits, fake_logits = logits.split([len(real), len(fake)])
        loss = discriminator_loss(real_logits, fake_logits)
        self.optimize("D", loss)
        return {"loss_D": loss.detach(), "D_real": real_logits.detach().mean(), "D_fake": fake_logits.detach().mean()}

    def proxy_forward(self, fakes: Fakes) -> Tensor:
        """R_phi of x_d (and of x_c when DOM is on): [B or 2B,3,S,S], with the proxy's graph. Needs
        no OpenGL image, so it can run while OpenGL draws."""
        use_dom = self.cfg.renderer.dom_weight > 0
        inputs = torch.cat([fakes.volume_binary, fakes.volume.detach()]) if use_dom else fakes.volume_binary
        with self.autocast():
            return self.renderer_step(inputs).float()

    def renderer_losses(self, fakes: Fakes, rendered: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(L_render, L_2, L_DOM) of Eq. (9): L_2 = ||R_phi(x_d) - R_d(x_d)||^2 (Eq. 5, summed over pixels),
        L_DOM = (log D(R_d(x_d)) - log D(R_phi(x_c)))^2 (Eq. 8). ``rendered``: ``proxy_forward(fakes)``
        if already computed (the proxy is not changed by the D update in between)."""
        assert fakes.opengl is not None
        n = len(fakes.cameras)
        use_dom = self.cfg.renderer.dom_weight > 0
        rendered = self.proxy_forward(fakes) if rendered is None else rendered
        l2 = squared_l2(rendered[:n], fakes.opengl)
        if not use_dom:
            zero = l2.new_zeros(())
            return l2, l2, zero
        with self.autocast():
            dom = dom_loss(self.D_step, rendered[n:], fakes.opengl, self.cfg.renderer.dom_space).float()
        return l2 + self.cfg.renderer.dom_weight * dom, l2, dom

    def update_renderer(self, fakes: Fakes, rendered: Tensor | None = None) -> dict[str, float]:
        total, l2, dom = self.renderer_losses(fakes, rendered)
        if not self.cfg.renderer.freeze:
            self.optimize("renderer", total)
        return {"loss_R": total.detach(), "R_l2": l2.detach(), "R_dom": dom.detach()}

    def update_generator(self, fakes: Fakes) -> dict[str, float]:
        """max_theta E log D(R_phi(G(z))) (Eq. 7, the non-saturating loss through the proxy)."""
        with self.autocast():
            logits = self.D_step(self.renderer_step(fakes.volume)).float()
        loss = generator_loss(logits)
        self.optimize("G", loss)
        return {"loss_G": loss.detach(), "voxel_mean": fakes.voxels.detach().mean()}

    def pretrain_step(self, cameras: Cameras) -> dict[str, float]:
        """In-run proxy pre-training on random shapes (no GAN updates), at the batch's camera distances."""
        radius, fov = _camera_stats(cameras)
        loss = proxy_pretrain_loss(self, len(cameras), radius, fov, self.cfg.renderer.pretrain_shapes)
        self.optimize("renderer", loss)
        return {"R_l2": loss.detach(), "pretraining": 1.0}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.missing_renderer_checkpoint = None  # the run's own renderer weights are loaded

    def train_step(self, batch: Batch, step: int) -> dict[str, float | Tensor]:
        if batch is None:
            raise UserError("iggan trains on images: pass --data DIR")
        if self.missing_renderer_checkpoint is not None:
            raise ConfigError("renderer.checkpoint", f"{self.missing_renderer_checkpoint} does not exist")
        radius, fov = _camera_stats(batch.cameras)
        self.view_radius, self.view_fov_deg = float(radius.median()), float(fov.median())
        if step < self.pretraining_steps:
            return self.pretrain_step(batch.cameras)
        real = self.real_images(batch)
        fakes = self.make_fakes(self.fake_cameras(batch.cameras))
        pending = self.start_opengl(fakes)
        # While OpenGL draws, the proxy's forward pass of the renderer update (its input is x_d, not the
        # OpenGL image, and the D update in between does not touch the proxy): same numbers, less waiting.
        rendered = self.proxy_forward(fakes) if self.cfg.rendering.overlap else None
        waited = time.perf_counter()
        self.finish_opengl(fakes, pending)
        logs: dict[str, float | Tensor] = {"opengl_wait_ms": 1000 * (time.perf_counter() - waited)}
        timings = getattr(self.pipeline.renderer, "last_timings", None)  # moderngl only
        if timings is not None:
            # What OpenGL costs the step: the wait above (the proxy's forward ran while it drew) and its parts.
            logs |= {"opengl_faces_per_mesh": timings.faces / max(timings.views, 1), "opengl_prepare_ms": timings.prepare_ms,
                     "opengl_upload_ms": timings.upload_ms, "opengl_draw_ms": timings.draw_ms,
                     "opengl_readback_ms": timings.readback_ms}
        logs |= self.update_discriminator(real, fakes)
        logs |= self.update_renderer(fakes, rendered)
        logs |= self.update_generator(fakes)
        return logs

    def training_phases(self) -> list[tuple[str, int]]:
        return [("pre-training", 0), ("GAN", self.pretraining_steps)] if self.pretraining_steps else []

    def setting_warnings(self, dataset: Dataset | None) -> list[str]:
        cfg, notes = self.cfg, []
        if self.pretraining_steps >= cfg.max_steps:
            notes.append(f"--renderer.pretrain-steps {self.pretraining_steps} >= --max-steps {cfg.max_steps}: every step "
                         "pre-trains the proxy renderer, G and D never train and samples stay empty; raise --max-steps "
                         f"above {self.pretraining_steps}, lower --renderer.pretrain-steps or pass --renderer.checkpoint")
        if dataset is None:
            return notes
        if dataset.info.num_classes > 1:
            notes.append(f"{dataset.root} has {dataset.info.num_classes} classes ({', '.join(dataset.info.class_names)}); "
                         "IG-GAN learns one category (docs/methods/iggan.md): make data of one --category")
        coloured, how = is_coloured(dataset)
        if coloured:
            notes.append(f"{dataset.root} is coloured ({how}); IG-GAN's voxel generator makes shape only and its renderer "
                         "draws one grey material, so it needs grey data: `unflat dataset synth ... --material grey`")
        return notes

    # ---- state ------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"view_radius": self.view_radius, "view_fov_deg": self.view_fov_deg}

    def load_extra_state(self, state: dict) -> None:
        self.view_radius = float(state.get("view_radius", self.view_radius))
        self.view_fov_deg = float(state.get("view_fov_deg", self.view_fov_deg))

    # ---- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample_voxels(self, seeds: list[int]) -> Tensor:
        """Continuous voxels [N,1,R,R,R] for each seed (z from that seed alone; G in eval mode)."""
        z = torch.stack([torch.randn(self.cfg.generator.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        was_training = self.G.training
        self.G.eval()
        try:
            with self.autocast():
                return self.G(z.to(self.device)).float()
        finally:
            self.G.train(was_training)

    def sample_cameras(self, n: int, seed: int) -> Cameras:
        az, el = self.azimuth_elevation_ranges()
        g = torch.Generator().manual_seed(int(seed) + 7919)
        return sample_views(n, self.view_radius, self.view_fov_deg, az, el, generator=g, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, seed: int, class_ids: Tensor | None = None, cameras: Cameras | None = None) -> Samples:
        """n shapes (seeds seed..seed+n-1) rendered by OpenGL at ``export_threshold``; extras["proxy"]
        holds the proxy renderer's images of the continuous voxels. With n*V cameras, shape i is rendered
        at cameras i*V .. i*V+V-1 (the multi-view contract of ``unflat dataset from-generator``)."""
        voxels = self.sample_voxels([seed + i for i in range(n)])
        cameras = self.sample_cameras(n, seed) if cameras is None else cameras.to(self.device)
        if len(cameras) != n:
            if len(cameras) % n:
                raise ValueError(f"{len(cameras)} cameras for {n} shapes: give n or n*V cameras")
            voxels = voxels.repeat_interleave(len(cameras) // n, 0)
        out = self.pipeline.render(voxels, cameras, self.cfg.export.threshold)
        with self.autocast():
            proxy = self.proxy_render(voxels, cameras).float()
        return Samples(images=out.rgb.to(self.device) * 2 - 1, cameras=cameras, masks=out.mask.to(self.device),
                       depth=out.depth.to(self.device), extras={"proxy": proxy, "voxels": voxels})

    def meshes(self, voxels: Tensor) -> list:
        """Meshes of continuous voxels [N,1,R,R,R] at ``export_threshold`` (marching cubes), world units, the object
        only: occupied voxels connected (within ``OBJECT_GAP_VOXELS``) to the piece around the centre
        (``geometry/foreground.object_density``, as tri-plane meshes), then pieces under ``mesh_min_component``
        of the largest one's area dropped."""
        from unflat.geometry.foreground import object_density  # noqa: PLC0415
        from unflat.geometry.mesh_ops import drop_small_components  # noqa: PLC0415

        level = self.cfg.export.threshold
        # stray voxels: occupied pieces not within OBJECT_GAP_VOXELS of the piece around the centre are cleared
        kept = torch.stack([object_density(v.reshape(v.shape[-3:]).float(), level, self.cfg.voxel_extent, radius=0,
                                           gap=OBJECT_GAP_VOXELS) for v in voxels]).reshape(voxels.shape)
        meshes = voxels_to_meshes(kept, level, self.cfg.voxel_extent, color=self.cfg.rendering.mesh_color)
        return [drop_small_components(mesh, self.cfg.export.mesh_min_component) for mesh in meshes]

    def export(self, out_dir: Path, num: int, seed: int, class_id: int | None = None,
               formats: tuple[str, ...] = ("glb",)) -> list[Path]:
        """Meshes of ``num`` samples (seeds seed..seed+num-1) as ``mesh_XXXX.<format>`` (XXXX: the sample's seed),
        with ``export.json``; samples whose occupancy never crosses ``export_threshold`` are skipped with a warning."""
        from unflat.export.pipeline import MeshFiles, mesh_stem  # noqa: PLC0415

        empty = []
        settings = {"threshold": self.cfg.export.threshold, "min_component": self.cfg.export.mesh_min_component,
                    "voxel_extent": self.cfg.voxel_extent}
        with (MeshFiles(out_dir, formats, settings) as files,
              PhaseProgress("meshes (marching cubes)", num, "meshes") as bar):
            for start in range(0, num, self.cfg.batch_size):  # batches: progress, and bounded memory
                seeds = [seed + i for i in range(start, min(num, start + self.cfg.batch_size))]
                for s, mesh in zip(seeds, self.meshes(self.sample_voxels(seeds))):
                    bar.advance()
                    if len(mesh.faces) == 0:
                        empty.append(s)
                        continue
                    files.write(mesh, mesh_stem(s))
            if empty:
                warnings.warn(f"{len(empty)} of {num} samples (seeds {_seed_ranges(empty)}): the generated occupancy "
                              f"never crosses --export.threshold {self.cfg.export.threshold}, so no mesh was written for "
                              "them (an untrained generator, or one still in pre-training, makes empty shapes)",
                              stacklevel=2)
            if not files.paths:  # raised inside the block: no export.json for an export without meshes
                raise UserError(f"no sample produced a surface at --export.threshold {self.cfg.export.threshold} "
                                "(an untrained generator, or one still in pre-training, makes empty shapes)")
        return files.paths

    def generate(self, out_dir: Path, num: int, seed: int = 0, class_id: int | None = None) -> list[Path]:
        """For seeds seed..seed+num-1: OpenGL renders (render_XXXX.png and renders.png), proxy renders
        (proxy.png), voxel grids (voxels_XXXX.npy, float16 [R,R,R], axes X, Y, Z) and GLB meshes."""
        import imageio.v3 as iio  # noqa: PLC0415

        from unflat.export.images import make_grid, to_uint8  # noqa: PLC0415

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        samples = self.sample(num, seed)
        renders = to_uint8(samples.images, (-1.0, 1.0))
        paths: list[Path] = []
        nrow = int(math.ceil(math.sqrt(num)))
        for name, images in (("renders.png", renders), ("proxy.png", to_uint8(samples.extras["proxy"], (-1.0, 1.0)))):
            iio.imwrite(out_dir / name, make_grid(images, nrow=nrow))
            paths.append(out_dir / name)
        voxels = samples.extras["voxels"]
        for i in range(num):
            iio.imwrite(out_dir / f"render_{seed + i:04d}.png", renders[i])
            np.save(out_dir / f"voxels_{seed + i:04d}.npy", voxels[i, 0].cpu().numpy().astype(np.float16))
            paths += [out_dir / f"render_{seed + i:04d}.png", out_dir / f"voxels_{seed + i:04d}.npy"]
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            try:
                paths += self.export(out_dir, num, seed, class_id, ("glb",))
            except UserError as exc:
                warnings.warn(str(exc), stacklevel=2)
        return paths


def _seed_ranges(seeds: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    parts, start = [], None
    for i, s in enumerate(seeds):
        start = s if start is None else start
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(f"{start}-{s}" if s > start else f"{s}")
            start = None
    return ", ".join(parts)


# =============================================================================================
# Renderer pre-training
# =============================================================================================
@register_method("iggan-renderer", config=IGGANRendererConfig, kind="helper",
                 description="pre-train IG-GAN's proxy neural renderer on random cubes/tables rendered by OpenGL (no --data needed)",
                 presets=lambda: {"tiny": renderer_tiny, "small": renderer_small, "paper": renderer_paper})
class IGGANRenderer(_ProxyMethodMixin, Method):
    """Pre-trains the proxy renderer R_phi with L2 to OpenGL renders of random binary shapes."""

    def __init__(self, cfg: IGGANRendererConfig, info: DatasetInfo, ctx: TrainContext) -> None:
        super().__init__(cfg, info, ctx)
        self.cfg: IGGANRendererConfig = cfg
        self.renderer = self.add_network("renderer", build_renderer(cfg))
        self.add_optimizer("renderer", torch.optim.Adam(self.renderer.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)))
        self.pipeline = build_pipeline(cfg)

    @staticmethod
    def builtin_data_info(cfg: IGGANRendererConfig) -> DatasetInfo:
        """Pre-training makes its own data; the engine asks for this when --data is not given."""
        return DatasetInfo(resolution=cfg.image_resolution, num_images=0, num_shapes=0, views_per_shape=1,
                           class_names=(f"random-{cfg.shapes}",), has_masks=False, has_depth=False,
                           has_meshes=False, kind="random-shapes")

    def train_step(self, batch: Batch | None, step: int) -> dict[str, float | Tensor]:
        n = self.cfg.batch_size
        if batch is None:
            radius, fov = self.cfg.cameras.radius, self.cfg.cameras.fov_deg
        else:  # with --data, views copy the dataset's camera distances and fields of view
            radius, fov = _camera_stats(batch.cameras)
            radius, fov = radius.cpu().repeat(math.ceil(n / len(radius)))[:n], fov.cpu().repeat(math.ceil(n / len(fov)))[:n]
        loss = proxy_pretrain_loss(self, n, radius, fov, self.cfg.shapes)
        self.optimize("renderer", loss)
        return {"R_l2": loss.detach()}

    @torch.no_grad()
    def evaluate_l2(self, shapes: Tensor, cameras: Cameras) -> float:
        """Mean squared error per pixel of the proxy against OpenGL on given shapes/views (tests, logs)."""
        target = self.pipeline.images(shapes, cameras, 0.5)
        with self.autocast():
            return float((self.proxy_render(shapes.to(self.device), cameras).float() - target).square().mean())

    @torch.no_grad()
    def sample(self, n: int, seed: int, class_ids: Tensor | None = None, cameras: Cameras | None = None) -> Samples:
        """Pairs of (OpenGL, proxy) renders of fixed random shapes: images alternate OpenGL, proxy."""
        fork = torch.random.fork_rng(devices=[])
        with fork:
            torch.manual_seed(seed)
            pairs = max(1, n // 2)
            shapes = random_shapes(pairs, self.cfg.voxel_resolution, self.cfg.shapes, self.cfg.voxel_extent, self.device)
            if cameras is None:
                views = self.cfg.cameras
                cameras = sample_views(pairs, views.radius, views.fov_deg, (-180.0, 180.0), views.elevation_range,
                                       device=self.device)
            cameras = cameras[:pairs].to(self.device)
        target = self.pipeline.images(shapes, cameras, 0.5)
        with self.autocast():
            proxy = self.proxy_render(shapes, cameras).float()
        images = torch.stack([target, proxy], 1).reshape(-1, *target.shape[1:])[:n]
        return Samples(images=images, cameras=Cameras.cat([cameras[i] for i in range(pairs) for _ in (0, 1)])[:n])


# =============================================================================================
# Presets and registration
# =============================================================================================
def _tiny_sizes() -> dict:
    return dict(voxel_resolution=16, image_resolution=16, batch_size=2, log_every=1, checkpoint_every=1, sample_every=0)


TINY_PROXY = dict(channels_3d=4, channels_2d=16, res_blocks_3d=1, res_blocks_2d=1)


def _small_sizes() -> dict:
    # Sized for 2 CPU cores, where the proxy's 3D convolutions on the 64^3 camera-frame grid dominate.
    return dict(voxel_resolution=32, image_resolution=32, batch_size=8, log_every=10, checkpoint_every=200,
                sample_every=100)


SMALL_PROXY = dict(channels_3d=8, channels_2d=32, res_blocks_3d=1, res_blocks_2d=2)


def iggan_tiny() -> IGGANConfig:
    return IGGANConfig(**_tiny_sizes(), max_steps=2, renderer=IGGANProxyConfig(**TINY_PROXY),
                       generator=VoxelGeneratorConfig(z_dim=16, channels=8, max_channels=16),
                       discriminator=IGGANDiscriminatorConfig(channels=8, max_channels=16))


def iggan_small() -> IGGANConfig:
    return IGGANConfig(**_small_sizes(), max_steps=1500,
                       renderer=IGGANProxyConfig(**SMALL_PROXY, pretrain_steps=300, pretrain_lr=1e-3,
                                                 pretrain_shapes="mixed"),
                       generator=VoxelGeneratorConfig(z_dim=64, channels=16, max_channels=64, output_bias=-2.0),
                       discriminator=IGGANDiscriminatorConfig(channels=32, max_channels=128))


def iggan_paper() -> IGGANConfig:
    return IGGANConfig(renderer=IGGANProxyConfig(pretrain_steps=5000))


def renderer_tiny() -> IGGANRendererConfig:
    return IGGANRendererConfig(**_tiny_sizes() | {"batch_size": 4}, max_steps=2, lr=1e-3,
                               renderer=ProxyNetConfig(**TINY_PROXY))


def renderer_small() -> IGGANRendererConfig:
    return IGGANRendererConfig(**_small_sizes(), max_steps=500, lr=1e-3, renderer=ProxyNetConfig(**SMALL_PROXY))


def renderer_paper() -> IGGANRendererConfig:
    return IGGANRendererConfig(max_steps=20_000, shapes="tables")


SPEC = get_method_spec(IGGAN)

RENDERER_SPEC = get_method_spec(IGGANRenderer)
