"""Pivotal Tuning Inversion (Roich et al. 2022) for tri-plane generators: one photo -> a 3D latent.

Stage 1 ("pivot"): the generator is frozen; one w (shared by every layer) is optimised, initialised
from the mean w of the image's class (the class a classifier predicts, or the class whose mean w
renders closest to the image), with loss = feature distance + pixel MSE. The camera is given or
estimated jointly (azimuth/elevation initialised from a coarse search).
Stage 2 ("tuning"): w and camera are frozen and a copy of the generator is fine-tuned around the pivot
with pixel + feature losses and PTI's locality regulariser (renders at codes near the pivot, moved
towards random codes, must stay as the original generator made them).

Works with any method that has ``G_ema`` (a ``TriplaneGenerator``), ``D``, ``cfg`` (camera radius/fov,
truncation), ``autocast()``, ``neural_resolution(images_seen)`` and ``mesh_from_planes``: `mvtriplane`
and `3dgp`.

Feature spaces, best first: VGG16 (the paper's; local weights via ``unflat.pretrained``), the domain
backbone (``backbone=PATH``; its category head is also used as the classifier), else the trained
discriminator's multi-scale activations (a feature space fitted to this very domain). The one used is
recorded in ``inversion.json``.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from unflat.cameras import Cameras

FeatureFn = Callable[[Tensor], list[Tensor]]
"""images [B,3,H,W] in [-1,1] -> list of feature maps/vectors (compared layer by layer)."""
ClassifyFn = Callable[[Tensor], Tensor]
"""images [B,3,H,W] in [-1,1] -> class logits [B,num_classes]."""


@dataclass
class PTISettings:
    """Inversion hyper-parameters (PTI / EG3D-PTI defaults)."""

    steps_w: int = 500
    """Stage-1 steps optimising w (and the camera)."""
    steps_g: int = 350
    """Stage-2 steps fine-tuning the generator."""
    lr_w: float = 0.01
    """Stage-1 Adam learning rate (cosine ramp-down over the last quarter)."""
    lr_camera: float = 0.5
    """Stage-1 learning rate of azimuth/elevation in degrees per step scale."""
    lr_g: float = 3e-4
    """Stage-2 Adam learning rate."""
    pixel_weight: float = 1.0
    """Weight of the pixel MSE (images in [-1,1])."""
    feature_weight: float = 1.0
    """Weight of the feature distance."""
    locality_weight: float = 1.0
    """Weight of the stage-2 locality regulariser (0 = off)."""
    locality_alpha: float = 30.0
    """PTI's step from the pivot towards a random code, in units of a 512-dim W (scaled by sqrt(w_dim/512))."""
    estimate_camera: bool = True
    """Optimise azimuth/elevation in stage 1 (else keep the given/initial camera)."""
    azimuth: float | None = None
    """Known camera azimuth in degrees (skips the coarse search)."""
    elevation: float | None = None
    """Known camera elevation in degrees."""
    class_id: int | None = None
    """Known class (skips classification)."""
    camera_candidates: int = 8
    """Azimuths tried (at elevations 0 and 30) by the coarse camera search."""
    progress: bool = True
    """Show a progress bar per stage."""


@dataclass
class PTIResult:
    """ws: [1,num_ws,w_dim] pivot; generator: the tuned copy; losses per step of each stage."""

    ws: Tensor
    azimuth: float
    elevation: float
    class_id: int | None
    class_source: str
    generator: torch.nn.Module
    losses_w: list[float] = field(default_factory=list)
    losses_g: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Feature spaces
# ---------------------------------------------------------------------------------------------
def vgg16_feature_fn(weights: str | Path | None = None, device: torch.device | str = "cpu") -> FeatureFn:
    """VGG16 relu1_2/2_2/3_3/4_3 activations (raises MissingWeightsError when the weights are absent)."""
    from unflat.pretrained import imagenet_normalize, load_vgg16_features

    vgg = load_vgg16_features(weights).to(device).eval().requires_grad_(False)
    cuts = (4, 9, 16, 23)

    def features(images: Tensor) -> list[Tensor]:
        x = imagenet_normalize((images.float().clamp(-1, 1) + 1) / 2)
        if x.shape[-1] < 224:  # VGG's receptive fields expect ImageNet-sized objects
            x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        outs, start = [], 0
        for cut in cuts:
            x = vgg[start:cut](x)
            outs.append(x)
            start = cut
        return outs

    return features


def discriminator_feature_fn(discriminator: torch.nn.Module) -> FeatureFn:
    """Multi-scale activations of a trained tri-plane GAN discriminator (dual input: image twice)."""

    def features(images: Tensor) -> list[Tensor]:
        x = images.float()
        channels = discriminator.in_channels
        x = torch.cat([x] * (channels // 3) + [x[:, : channels % 3]], 1) if channels != 3 else x
        return [x] + discriminator.features(x)

    return features


def backbone_feature_fn(backbone: torch.nn.Module) -> FeatureFn:
    return lambda images: backbone.stage_features((images.float().clamp(-1, 1) + 1) / 2)


def feature_distance(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """Sum over layers of the mean squared difference of channel-normalised features (LPIPS-like, unweighted)."""
    total = 0.0
    for fa, fb in zip(a, b):
        fa = fa.float() / (fa.float().norm(dim=1, keepdim=True) + 1e-8)
        fb = fb.float() / (fb.float().norm(dim=1, keepdim=True) + 1e-8)
        total = total + (fa - fb).square().sum(1).mean()
    return total


def choose_feature_fn(method, vgg_weights: str | Path | None = None, backbone: str | Path | None = None
                      ) -> tuple[FeatureFn, str, ClassifyFn | None]:
    """(feature_fn, its name, classifier or None): VGG16 if its weights are here, else the domain backbone
    (``backbone``, or the training data's ``backbone.safetensors``), else the method's discriminator.
    The backbone's category head classifies the image when its classes match the generator's."""
    from unflat.errors import UserError

    classifier = None
    data = getattr(method.cfg, "data", None)
    if backbone is None and data is not None and (Path(data) / "backbone.safetensors").is_file():
        backbone = Path(data) / "backbone.safetensors"  # unflat's convention: DATA/backbone.safetensors
    if backbone is not None:
        from unflat.nets.domain_backbone import load_domain_backbone

        model, _ = load_domain_backbone(backbone, method.device)
        if model.config.num_classes == method.num_classes:
            classifier = lambda images: model.heads(model((images.float().clamp(-1, 1) + 1) / 2))["category"]  # noqa: E731
    try:
        return vgg16_feature_fn(vgg_weights, method.device), "vgg16", classifier
    except UserError:
        pass
    if backbone is not None:
        return backbone_feature_fn(model), f"domain backbone {Path(backbone).name}", classifier
    return discriminator_feature_fn(method.D), "discriminator features (no VGG16 weights found)", classifier


# ---------------------------------------------------------------------------------------------
# The two stages
# ---------------------------------------------------------------------------------------------
def _progress(enabled: bool, description: str, total: int):
    from unflat.engine.progress import PhaseProgress

    return PhaseProgress(description, total, "steps", enabled=enabled)


def _camera(method, azimuth: Tensor, elevation: Tensor) -> Cameras:
    cams = Cameras.from_orbit(azimuth.reshape(-1), elevation.reshape(-1), method.cfg.cameras.radius, method.cfg.cameras.fov)
    return cams.to(method.device)


def _render(method, generator, ws: Tensor, cameras: Cameras) -> Tensor:
    """Deterministic render of ws [B,num_ws,w_dim] from cameras -> images [B,3,R,R] in [-1,1]."""
    res = method.neural_resolution(method.images_seen)
    if len(cameras) != ws.shape[0]:
        ws = ws.expand(len(cameras), -1, -1)
    with method.autocast():
        out = generator.render(generator.planes(ws, "const"), ws, cameras, res, perturb=False, noise_mode="const")
    return out.image.float()


def _loss(method, feature_fn: FeatureFn, target_feats: list[Tensor], target: Tensor, image: Tensor,
          s: PTISettings) -> Tensor:
    pixel = (image - target).square().flatten(1).mean(1)
    feats = feature_fn(image)
    feat = torch.stack([feature_distance([f[i:i + 1] for f in feats], [t for t in target_feats])
                        for i in range(image.shape[0])])
    return s.pixel_weight * pixel + s.feature_weight * feat


@torch.no_grad()
def _initialise(method, target: Tensor, feature_fn: FeatureFn, target_feats: list[Tensor], s: PTISettings,
                classifier: ClassifyFn | None) -> tuple[int | None, str, float, float]:
    """Class and camera to start from: given values first, then classifier, then a grid search of class
    mean w x candidate cameras by the inversion loss."""
    G = method.G_ema
    if s.class_id is not None:
        classes, source = [s.class_id], "given"
    elif method.num_classes == 0:
        classes, source = [None], "unconditional"
    elif classifier is not None:
        classes, source = [int(classifier(target).argmax(1)[0])], "classifier"
    else:
        classes, source = list(range(method.num_classes)), "nearest class mean"
    if s.azimuth is not None and s.elevation is not None:
        views = [(float(s.azimuth), float(s.elevation))]
    else:
        azs = [i * 360.0 / s.camera_candidates - 180.0 for i in range(s.camera_candidates)]
        views = [(a, e) for e in (0.0, 30.0) for a in azs]
    az = torch.tensor([v[0] for v in views])
    el = torch.tensor([v[1] for v in views])
    cams = _camera(method, az, el)
    best = (math.inf, classes[0], views[0])
    for k in classes:
        w = G.mean_w(k)[None, None].expand(1, G.num_ws, -1)
        for start in range(0, len(views), 8):
            images = _render(method, G, w, cams[start:start + 8])
            losses = _loss(method, feature_fn, target_feats, target, images, s)
            i = int(losses.argmin())
            if float(losses[i]) < best[0]:
                best = (float(losses[i]), k, views[start + i])
    _, k, (a, e) = best
    return k, (source if len(classes) == 1 else "nearest class mean"), a, e


def invert_image(method, target: Tensor, settings: PTISettings | None = None, feature_fn: FeatureFn | None = None,
                 classifier: ClassifyFn | None = None, label: str = "PTI") -> PTIResult:
    """Invert one image [1,3,R,R] in [-1,1] (at the method's output resolution) -> PTIResult. ``label`` starts
    the progress lines (e.g. the image's name)."""
    s = settings or PTISettings()
    if feature_fn is None:
        feature_fn = discriminator_feature_fn(method.D)
    G = method.G_ema
    target = target.to(method.device).float()
    with torch.no_grad():
        target_feats = [f.detach() for f in feature_fn(target)]
    class_id, class_source, az0, el0 = _initialise(method, target, feature_fn, target_feats, s, classifier)

    # ---- stage 1: w (+ camera) ----
    w = G.mean_w(class_id).detach().clone()[None, None].requires_grad_(True)
    azimuth = torch.tensor([az0], device=method.device, requires_grad=s.estimate_camera)
    elevation = torch.tensor([el0], device=method.device, requires_grad=s.estimate_camera)
    params = [{"params": [w], "lr": s.lr_w}]
    if s.estimate_camera:
        params.append({"params": [azimuth, elevation], "lr": s.lr_camera})
    opt = torch.optim.Adam(params, betas=(0.9, 0.999))
    base = [g["lr"] for g in opt.param_groups]
    G.requires_grad_(False)
    losses_w: list[float] = []
    with _progress(s.progress, f"{label} stage 1 (w)", s.steps_w) as bar:
        for step in range(s.steps_w):
            t = step / max(s.steps_w, 1)
            ramp = min(1.0, (1 - t) / 0.25)  # cosine ramp-down over the last quarter
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * 0.5 * (1 - math.cos(math.pi * ramp))
            ws = w.expand(1, G.num_ws, -1)
            image = _render(method, G, ws, _camera(method, azimuth, elevation.clamp(-89, 89)))
            loss = _loss(method, feature_fn, target_feats, target, image, s).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses_w.append(float(loss.detach()))
            bar.advance(1, f"loss {losses_w[-1]:.4f}")
    ws = w.detach().expand(1, G.num_ws, -1).clone()
    camera = _camera(method, azimuth.detach(), elevation.detach().clamp(-89, 89))

    # ---- stage 2: tune the generator around the pivot ----
    tuned = copy.deepcopy(G).requires_grad_(True).train()
    opt_g = torch.optim.Adam(tuned.parameters(), lr=s.lr_g)
    alpha = s.locality_alpha * math.sqrt(G.w_dim / 512)
    losses_g: list[float] = []
    with _progress(s.progress, f"{label} stage 2 (G)", s.steps_g) as bar:
        for _ in range(s.steps_g):
            image = _render(method, tuned, ws, camera)
            loss = _loss(method, feature_fn, target_feats, target, image, s).mean()
            if s.locality_weight > 0:
                loss = loss + s.locality_weight * _locality(method, G, tuned, ws, class_id, alpha, feature_fn)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            losses_g.append(float(loss.detach()))
            bar.advance(1, f"loss {losses_g[-1]:.4f}")
    tuned.eval().requires_grad_(False)
    return PTIResult(ws, float(azimuth.detach()), float(elevation.detach().clamp(-89, 89)), class_id, class_source,
                     tuned, losses_w, losses_g)


def _locality(method, original, tuned, ws: Tensor, class_id: int | None, alpha: float, feature_fn: FeatureFn) -> Tensor:
    """PTI's locality regulariser: at a code moved from the pivot towards a random code, the tuned
    generator must render what the original one did (random camera each call)."""
    z = torch.randn(1, original.z_dim, device=method.device)
    ids = None if class_id is None else torch.tensor([class_id], device=method.device)
    with torch.no_grad():
        w_rand = original.map(z, original.class_onehot(ids, 1, method.device))
        direction = w_rand - ws
        w_near = ws + alpha * direction / direction[:, :1].norm(dim=-1, keepdim=True).clamp_min(1e-8)
        camera = method.sample_cameras(1, 1)
        reference = _render(method, original, w_near, camera)
    image = _render(method, tuned, w_near, camera)
    return (image - reference).square().mean() + feature_distance(feature_fn(image), [f.detach() for f in feature_fn(reference)])


# ---------------------------------------------------------------------------------------------
# Files in, files out
# ---------------------------------------------------------------------------------------------
def load_image(path: Path, resolution: int) -> Tensor:
    """An image file -> [1,3,R,R] in [-1,1]: RGB (alpha composited on white), centre-cropped square, resized.

    Unreadable files raise a one-line UserError naming the file and the reason.
    """
    from unflat.data.image_files import SkipReason, load_image_rgb
    from unflat.errors import UserError

    rgb = load_image_rgb(path, resolution)
    if isinstance(rgb, SkipReason):
        raise UserError(f"{path}: cannot use this image ({rgb})")
    return (torch.from_numpy(rgb.astype(np.float32)) / 127.5 - 1).permute(2, 0, 1)[None]


def invert_images(method, images: list[Path], out_dir: Path, steps_w: int = 500, steps_g: int = 350,
                  vgg_weights: str | Path | None = None, backbone: str | Path | None = None,
                  novel_views: int = 8, mesh: bool = True, **settings) -> list[Path]:
    """Invert each image and write, under ``out_dir/<image stem>/``: reconstruction.png (target | pivot |
    tuned), novel_views.png, depth.png + depth.npy, mesh.glb, turntable.gif, generator.safetensors
    (tuned generator + pivot ws) and inversion.json. Returns the written paths."""
    from safetensors.torch import save_file

    from unflat.export.images import depth_to_image, save_grid, save_turntable
    from unflat.export.pipeline import export_mesh

    s = PTISettings(steps_w=steps_w, steps_g=steps_g, **settings)
    feature_fn, feature_name, classifier = choose_feature_fn(method, vgg_weights, backbone)
    written: list[Path] = []
    for index, path in enumerate(map(Path, images)):
        target = load_image(path, method.output_resolution).to(method.device)
        label = f"invert {path.name} ({index + 1}/{len(images)})" if len(images) > 1 else f"invert {path.name}"
        result = invert_image(method, target, s, feature_fn, classifier, label)
        folder = Path(out_dir) / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        camera = _camera(method, torch.tensor([result.azimuth]), torch.tensor([result.elevation]))
        with torch.no_grad():
            pivot = _render(method, method.G_ema, result.ws, camera)
            tuned = _render(method, result.generator, result.ws, camera)
            written.append(save_grid(torch.cat([target, pivot, tuned]).cpu(), folder / "reconstruction.png", value_range=(-1, 1)))
            az = torch.tensor([result.azimuth + i * 360.0 / novel_views for i in range(novel_views)])
            views = _camera(method, az, torch.full_like(az, result.elevation))
            G = result.generator
            res = method.neural_resolution(method.images_seen)
            ws = result.ws.expand(novel_views, -1, -1)
            with method.autocast():
                out = G.render(G.planes(ws, "const"), ws, views, res, perturb=False, noise_mode="const")
            written.append(save_grid(out.image.float().clamp(-1, 1).cpu(), folder / "novel_views.png", nrow=novel_views, value_range=(-1, 1)))
            written.append(save_grid(depth_to_image(out.depth.float(), out.opacity.float()).cpu(), folder / "depth.png",
                                     nrow=novel_views, value_range=(0, 1)))
            np.save(folder / "depth.npy", out.depth[:1].float().cpu().numpy())
            written.append(folder / "depth.npy")
            planes = G.planes(result.ws, "const")
            render_fn = lambda cams: (G.render(planes, result.ws, cams.to(method.device), res, perturb=False,  # noqa: E731
                                               noise_mode="const").image.float().clamp(-1, 1) + 1) / 2
            written.append(save_turntable(render_fn, folder / "turntable.gif", frames=24, elevation=result.elevation,
                                          radius=method.cfg.cameras.radius, fov=method.cfg.cameras.fov, device=method.device))
            if mesh:
                m = method.mesh_from_planes(planes, G)
                if len(m.faces):
                    written += export_mesh(m, folder / "mesh", ("glb",))
        state = {f"generator.{k}": v.detach().contiguous().cpu() for k, v in result.generator.state_dict().items()}
        state["pivot_ws"] = result.ws.cpu().contiguous()
        save_file(state, str(folder / "generator.safetensors"))
        written.append(folder / "generator.safetensors")
        info = {
            "image": str(path), "class_id": result.class_id, "class_source": result.class_source,
            "class_name": (method.info.class_names[result.class_id] if result.class_id is not None
                           and result.class_id < len(method.info.class_names) else None),
            "azimuth": result.azimuth, "elevation": result.elevation, "feature_space": feature_name,
            "loss_w_first": result.losses_w[0] if result.losses_w else None,
            "loss_w_last": result.losses_w[-1] if result.losses_w else None,
            "loss_g_first": result.losses_g[0] if result.losses_g else None,
            "loss_g_last": result.losses_g[-1] if result.losses_g else None,
            "settings": asdict(s),
        }
        (folder / "inversion.json").write_text(json.dumps(info, indent=2))
        written.append(folder / "inversion.json")
    return written
