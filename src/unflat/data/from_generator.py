"""`unflat dataset from-generator RUN`: a posed multi-view dataset rendered by a trained 3D generator.

The bridge of the pipeline: a 3D-aware GAN (iggan, mvtriplane, 3dgp) trained on flat images
renders each of its latents from several known cameras; the result (images, masks, depth when the
generator gives it, cameras, shape ids) trains the ``progressive`` reconstruction network.

Contract with the generator methods (``Method.sample``): called as
``sample(n, seed, class_ids, cameras=Cameras of length n * V)``, a method must render latent ``i``
(drawn from ``seed``) at cameras ``i*V .. i*V+V-1``, i.e. the same object from V viewpoints, and
return ``Samples`` with ``images`` [n*V,3,H,W] in [-1,1] and ``masks`` [n*V,1,H,W]; ``depth`` is
optional. ``class_ids`` has length n (one class per latent). Methods whose ``sample`` cannot
hold a latent fixed across cameras cannot make multi-view data.

Quality filter: a shape is dropped when any of its views has a mask covering less than
``min_mask_fraction`` of the image (the generator produced nothing, or a broken object) or more
than ``max_mask_fraction`` (the object fills or overflows the frame). Dropped shapes are
replaced by new latents until ``num_shapes`` are written or ``max_attempts_factor`` times as many
were tried.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from tyro.conf import Positional

from unflat.cameras import Cameras
from unflat.engine.progress import PhaseProgress
from unflat.errors import UserError


@dataclass
class FromGeneratorConfig:
    """Render a posed multi-view dataset (images + masks + cameras, depth when available) with a trained 3D generator."""

    run: Positional[Path]
    """Run directory (or checkpoint) of a trained iggan, mvtriplane or 3dgp generator."""
    out: Path = Path("data/from-generator")
    """Output dataset directory."""
    num_shapes: int = 1000
    """Objects (latents) to keep after the quality filter."""
    views_per_shape: int = 8
    """Views rendered of each object."""
    resolution: int = 0
    """Image side in pixels (0 = the generator's training resolution; others are resized)."""
    camera_mode: Literal["random", "ring"] = "random"
    """random: each view's azimuth/elevation uniform in the ranges; ring: views evenly spaced in azimuth
    (random start), elevation uniform in its range."""
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    """Azimuth range in degrees (0 = camera on +Z)."""
    elevation_range: tuple[float, float] = (-10.0, 40.0)
    """Elevation range in degrees."""
    radius: float = 0.0
    """Camera distance from the origin (0 = the median of the generator's training cameras, else 2.5)."""
    fov: float = 0.0
    """Vertical field of view in degrees (0 = the median of the generator's training cameras, else 30)."""
    min_mask_fraction: float = 0.02
    """Drop a shape if any view's mask covers less than this fraction of the image."""
    max_mask_fraction: float = 0.9
    """Drop a shape if any view's mask covers more than this fraction of the image."""
    max_attempts_factor: float = 3.0
    """Give up after trying this many times num_shapes latents."""
    class_id: int | None = None
    """Class of every shape (class-conditional generators); default: classes in turn."""
    batch_shapes: int = 8
    """Latents rendered per generator call."""
    seed: int = 0
    """Seed of latents and cameras."""
    device: str = "auto"
    """cpu, cuda, mps or auto."""
    overwrite: bool = False
    """Replace an existing dataset at --out."""

    def validate(self) -> None:
        from unflat.errors import ConfigError

        for name in ("num_shapes", "views_per_shape", "batch_shapes"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if self.resolution < 0 or self.radius < 0 or self.fov < 0 or self.fov >= 180:
            raise ConfigError("resolution", "resolution, radius and fov must be >= 0 (fov < 180)")
        if not 0 <= self.min_mask_fraction < self.max_mask_fraction <= 1:
            raise ConfigError("min_mask_fraction", "need 0 <= min_mask_fraction < max_mask_fraction <= 1")
        if self.azimuth_range[0] > self.azimuth_range[1] or self.elevation_range[0] > self.elevation_range[1]:
            raise ConfigError("azimuth_range", "ranges must be (low, high)")
        if not -90 <= self.elevation_range[0] <= self.elevation_range[1] <= 90:
            raise ConfigError("elevation_range", "must lie within [-90, 90]")
        if self.max_attempts_factor < 1:
            raise ConfigError("max_attempts_factor", "must be >= 1")


def sample_view_cameras(num_shapes: int, views: int, cfg: FromGeneratorConfig, radius: float, fov: float,
                        generator: torch.Generator) -> Cameras:
    """Cameras [num_shapes * views] grouped by shape, from the configured distribution."""
    n = num_shapes * views
    lo, hi = cfg.azimuth_range
    if cfg.camera_mode == "ring" and hi - lo >= 360:  # full circle: V evenly spaced views from a random start
        start = lo + torch.rand(num_shapes, 1, generator=generator) * 360.0
        az = (start + torch.arange(views, dtype=torch.float32)[None] * (360.0 / views)).reshape(-1)
    elif cfg.camera_mode == "ring":  # partial range: V views spread from one end to the other
        az = torch.linspace(lo, hi, views).repeat(num_shapes)
    else:
        az = lo + torch.rand(n, generator=generator) * (hi - lo)
    e_lo, e_hi = cfg.elevation_range
    el = e_lo + torch.rand(n, generator=generator) * (e_hi - e_lo)
    return Cameras.from_orbit(az, el, radius, fov)


def mask_fraction_ok(masks: torch.Tensor, views: int, low: float, high: float) -> torch.Tensor:
    """masks [n*V,1,H,W] -> [n] bool: every view of the shape covers a fraction in [low, high]."""
    fraction = masks.float().flatten(1).mean(1).view(-1, views)
    return ((fraction >= low) & (fraction <= high)).all(1)


def require_multiview_generator(method) -> None:
    """One-line error for runs that cannot render a latent from several cameras (e.g. a progressive run)."""
    if not method.multiview_generator:
        raise UserError(f"a '{method.name}' run cannot make a multi-view dataset: "
                        "use a trained 3D generator run (iggan, mvtriplane or 3dgp)")


def render_shapes(method, cfg: FromGeneratorConfig, radius: float, fov: float, num_classes: int,
                  ) -> Iterator[tuple[int, torch.Tensor, Cameras, torch.Tensor, torch.Tensor | None, int]]:
    """Yield accepted shapes one by one: (class id, images [V,3,H,W] in [-1,1], cameras, masks [V,1,H,W],
    depth [V,1,H,W] or None, latent index). Stops after ``max_attempts_factor * num_shapes`` latents."""
    require_multiview_generator(method)
    views = cfg.views_per_shape
    budget = int(math.ceil(cfg.max_attempts_factor * cfg.num_shapes))
    camera_gen = torch.Generator().manual_seed(cfg.seed)
    tried = 0
    call = 0
    while tried < budget:
        n = min(cfg.batch_shapes, budget - tried)
        cams = sample_view_cameras(n, views, cfg, radius, fov, camera_gen)
        if cfg.class_id is not None:
            class_ids = torch.full((n,), cfg.class_id, dtype=torch.long)
        else:
            class_ids = (torch.arange(tried, tried + n) % max(num_classes, 1)).long()
        with torch.no_grad():
            samples = method.sample(n, cfg.seed * 1_000_003 + call, class_ids=class_ids.to(method.device),
                                    cameras=cams.to(method.device))
        call += 1
        if samples.masks is None:
            raise UserError(f"{type(method).__name__}.sample returns no masks; it cannot make a dataset for reconstruction")
        if samples.images.shape[0] != n * views:
            raise UserError(f"{type(method).__name__}.sample returned {samples.images.shape[0]} images for "
                            f"{n} latents x {views} cameras: it does not follow the multi-view contract (see unflat.data.from_generator)")
        ok = mask_fraction_ok(samples.masks, views, cfg.min_mask_fraction, cfg.max_mask_fraction)
        for i in range(n):
            if bool(ok[i]):
                rows = slice(i * views, (i + 1) * views)
                depth = None if samples.depth is None else samples.depth[rows].cpu()
                yield (int(class_ids[i]), samples.images[rows].cpu(), cams[rows], samples.masks[rows].cpu(), depth, tried + i)
        tried += n


def _resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=(size, size), mode="nearest")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def write_from_generator(method, cfg: FromGeneratorConfig, class_names: tuple[str, ...], resolution: int,
                         radius: float, fov: float, source: dict | None = None) -> Path:
    """Render with ``method`` (anything with the sample contract above) into a dataset at ``cfg.out``."""
    from unflat.data.format import DatasetWriter

    views = cfg.views_per_shape
    written = 0
    first = True
    writer = None
    shapes = render_shapes(method, cfg, radius, fov, len(class_names))
    try:
        with PhaseProgress(f"from-generator: {views} views per shape", cfg.num_shapes, "shapes") as bar:
            for class_id, images, cams, masks, depth, latent in shapes:
                if first:
                    # a tri-plane generator trained on photos renders its learned scene behind the object
                    background = "white" if method.background == "white" else "wild"
                    writer = DatasetWriter(cfg.out, resolution, class_names, kind="from-generator", with_masks=True,
                                           with_depth=depth is not None, views_per_shape=views, overwrite=cfg.overwrite,
                                           background=background,
                                           source={**(source or {}), "camera_mode": cfg.camera_mode, "radius": radius,
                                                   "fov": fov, "seed": cfg.seed})
                    first = False
                images = _resize(images.float(), resolution, "bilinear")
                masks = _resize(masks.float(), resolution, "bilinear").clamp(0, 1)
                pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
                for v in range(views):
                    d = None
                    if writer.with_depth:
                        d = _resize(depth[v:v + 1].float(), resolution, "nearest")[0, 0].numpy()
                    writer.add(pixels[v], cams[v], class_id=class_id, shape_id=written, mask=masks[v, 0].numpy(), depth=d)
                written += 1
                bar.advance()
                if written >= cfg.num_shapes:
                    break
        if writer is None:
            raise UserError(f"every rendered shape failed the quality filter (mask fraction outside "
                            f"[{cfg.min_mask_fraction}, {cfg.max_mask_fraction}]); check the run or relax the filter")
        out = writer.finalize()
    except BaseException:
        if writer is not None:
            shutil.rmtree(writer.tmp, ignore_errors=True)  # no partial dataset is left behind
        raise
    if written < cfg.num_shapes:
        print(f"warning: only {written} of {cfg.num_shapes} shapes passed the quality filter within "
              f"{cfg.max_attempts_factor:g}x attempts")
    return out


__all__ = ["FromGeneratorConfig", "write_from_generator", "render_shapes",
           "sample_view_cameras", "mask_fraction_ok"]
