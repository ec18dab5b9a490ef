"""Inversion quality on held-back images: how well PTI recovers an unseen object, in image and in depth.

The geometry-aware ImageNet paper (Table 3) evaluates single-view reconstruction by PTI with LPIPS
between the input and its reconstruction, and "depth accuracy" (from EG3D: MSE of the rendered depth
against a pseudo-ground-truth depth map predicted by DPT, both normalised to zero mean and unit
variance). On embedded data the ground truth is exact, so unflat compares against it instead of an
estimator's guess, and adds what posed multi-view data allows:

* input view: the image PTI saw, rendered by the stage-1 pivot (frozen generator) and by the tuned
  generator: PSNR, SSIM, perceptual distance (LPIPS when its weights are local, else the labelled
  domain-backbone distance), silhouette IoU, the paper's depth accuracy, and abs-rel / RMSE after a
  least-squares scale-and-shift alignment (``unflat.metrics.depth``);
* novel views: the other views of the same shape, rendered from the inverted latent at cameras that
  move relative to the estimated input camera as the dataset's cameras move relative to the input
  view (or the dataset's own cameras with ``camera="dataset"``), compared with their images and depth.

Held-back data: shapes the generator never saw, e.g. ``unflat dataset synth --seed 1 --views-per-shape 3``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from unflat.cameras import Cameras
from unflat.data.format import Dataset
from unflat.metrics.depth import aligned_depth_errors
from unflat.metrics.evaluate import MetricSummary, evaluate_reconstruction

CameraMode = Literal["estimate", "dataset"]


@dataclass
class InversionSettings:
    """How many held-back images to invert and how hard."""

    num_images: int = 8
    """Held-back shapes to invert (one input view each; classes taken in turn)."""
    steps_w: int = 100
    """PTI stage-1 steps (w and camera)."""
    steps_g: int = 50
    """PTI stage-2 steps (generator tuning)."""
    camera: CameraMode = "estimate"
    """estimate = PTI estimates the input camera (the paper: poses of photos are unknown) and novel views move
    relative to it; dataset = the dataset's cameras are given (assumes the generator's frame is the data's)."""
    seed: int = 0
    """Seed of the chosen shapes and of each inversion."""
    max_seconds: float = 0.0
    """Start no new inversion after this many seconds (0 = no limit); the number done is recorded."""
    progress: bool = False
    """PTI's progress bars."""


def held_back_views(dataset: Dataset, num: int, seed: int) -> list[tuple[int, list[int]]]:
    """(input row, [other rows of the same shape]) for up to ``num`` shapes: a seeded order within each
    class, classes taken in turn so every class is represented."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(dataset.labels)
    by_class: dict[int, list[np.ndarray]] = {}
    for group in dataset.views_of_shape():
        by_class.setdefault(int(labels[group[0]]), []).append(np.sort(group))
    queues = [[groups[i] for i in rng.permutation(len(groups))] for _, groups in sorted(by_class.items())]
    chosen: list[tuple[int, list[int]]] = []
    while len(chosen) < num and any(queues):
        for queue in queues:
            if queue and len(chosen) < num:
                group = queue.pop(0)
                chosen.append((int(group[0]), [int(r) for r in group[1:]]))
    return chosen


def _rows(dataset: Dataset, rows: list[int], resolution: int) -> dict[str, Tensor]:
    """Dataset rows at ``resolution``: images [N,3,R,R] in [0,1], foreground mask [N,1,R,R] (mask > 0.5 and
    depth > 0), depth [N,1,R,R] (camera z), orbit azimuth/elevation [N] in degrees."""
    idx = np.asarray(rows)
    images = torch.from_numpy(np.array(dataset.images[idx])).permute(0, 3, 1, 2).float() / 255
    depth = torch.from_numpy(np.array(dataset.depth[idx], dtype=np.float32))[:, None]
    mask = (torch.from_numpy(np.array(dataset.masks[idx])).float()[:, None] / 255 if dataset.masks is not None
            else (depth > 0).float())
    if images.shape[-1] != resolution:
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                               antialias=True).clamp(0, 1)
        mask = F.interpolate(mask, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
        depth = F.interpolate(depth, size=(resolution, resolution), mode="nearest")
    azimuth, elevation, _ = dataset.cameras[torch.from_numpy(idx)].to_orbit()
    return {"images": images, "mask": ((mask > 0.5) & (depth > 0)).float(), "depth": depth,
            "azimuth": azimuth.float(), "elevation": elevation.float()}


@torch.no_grad()
def render_views(method, generator, ws: Tensor, azimuth: Tensor, elevation: Tensor) -> dict[str, Tensor]:
    """Render one latent ws [1,num_ws,w_dim] from orbit cameras (degrees, [N]) with the method's radius and
    field of view -> images [N,3,R,R] in [0,1], depth [N,1,R,R] (camera z) and opacity [N,1,R,R] at the
    method's output resolution."""
    cams = Cameras.from_orbit(azimuth.reshape(-1).float(), elevation.reshape(-1).float().clamp(-89, 89),
                              method.cfg.cameras.radius, method.cfg.cameras.fov).to(method.device)
    ws = ws.expand(len(cams), -1, -1)
    with method.autocast():
        out = generator.render(generator.planes(ws, "const"), ws, cams, method.neural_resolution(method.images_seen),
                               perturb=False, noise_mode="const")
    size = method.output_resolution
    resize = lambda t: t if t.shape[-1] == size else F.interpolate(t, size=(size, size), mode="bilinear",  # noqa: E731
                                                                    align_corners=False)
    return {"images": ((out.image.float().clamp(-1, 1) + 1) / 2).cpu(), "depth": resize(out.depth.float()).cpu(),
            "opacity": resize(out.opacity.float()).clamp(0, 1).cpu()}


def view_metrics(pred: dict[str, Tensor], target: dict[str, Tensor], perceptual=None, device="cpu") -> dict:
    """Every paired metric of renders against dataset views (a ReconstructionEvaluation dict plus
    ``depth_abs_rel`` and ``depth_rmse`` after scale-and-shift alignment)."""
    rec = evaluate_reconstruction(pred_images=pred["images"], target_images=target["images"], pred_masks=pred["opacity"],
                                  target_masks=target["mask"], pred_depth=pred["depth"], reference_depth=target["depth"],
                                  perceptual=perceptual, device=device).to_dict()
    rec.pop("settings", None)
    errors = aligned_depth_errors(pred["depth"], target["depth"], target["mask"])
    rec["depth_abs_rel"] = asdict(MetricSummary.of(errors["abs_rel"]))
    rec["depth_rmse"] = asdict(MetricSummary.of(errors["rmse"]))
    return rec


def _cat(parts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def evaluate_inversions(method, dataset: Dataset, settings: InversionSettings, feature_fn, feature_name: str,
                        classifier=None, perceptual=None) -> tuple[dict, np.ndarray | None]:
    """Invert held-back images with PTI and measure the reconstructions -> (results dict, picture grid).

    The picture has one column per image; rows: input, pivot, tuned, first novel-view target, its render
    (uint8 [H,W,3]). ``method``: an ``unflat.methods.base.Invertible`` (mvtriplane, 3dgp)."""
    from unflat.export.images import make_grid, to_uint8
    from unflat.metrics.report import upscale_nearest

    if dataset.depth is None:
        raise ValueError(f"{dataset.root} has no depth maps (depth.npy): inversion quality needs ground-truth depth")
    size = method.output_resolution
    chosen = held_back_views(dataset, settings.num_images, settings.seed)
    same_class_names = tuple(method.info.class_names) == tuple(dataset.info.class_names)
    whole_frames = method.full_frame  # 3dgp renders patches unless told
    inputs, pivots, tuned, novel_targets, novel_pivots, novel_tuned, per_image = [], [], [], [], [], [], []
    start = time.perf_counter()
    stopped_early = False
    for i, (row, others) in enumerate(chosen):
        if settings.max_seconds and time.perf_counter() - start > settings.max_seconds:
            stopped_early = True
            break
        began = time.perf_counter()
        target = _rows(dataset, [row], size)
        given = settings.camera == "dataset"
        pti = dict(steps_w=settings.steps_w, steps_g=settings.steps_g, progress=settings.progress,
                   estimate_camera=not given,
                   azimuth=float(target["azimuth"][0]) if given else None,
                   elevation=float(target["elevation"][0]) if given else None)
        torch.manual_seed(settings.seed + i)
        with whole_frames():
            result = method.invert_tensor(target["images"] * 2 - 1, feature_fn, classifier,
                                          f"inversion {i + 1}/{len(chosen)}", **pti)
            az, el = torch.tensor([result.azimuth]), torch.tensor([result.elevation])
            inputs.append(target)
            pivots.append(render_views(method, method.G_ema, result.ws, az, el))
            tuned.append(render_views(method, result.generator, result.ws, az, el))
            if others:
                novel = _rows(dataset, others, size)
                if given:
                    novel_az, novel_el = novel["azimuth"], novel["elevation"]
                else:  # the dataset's camera motion from the input view, applied to the estimated camera
                    novel_az = result.azimuth + (novel["azimuth"] - target["azimuth"][0])
                    novel_el = result.elevation + (novel["elevation"] - target["elevation"][0])
                novel_targets.append(novel)
                novel_pivots.append(render_views(method, method.G_ema, result.ws, novel_az, novel_el))
                novel_tuned.append(render_views(method, result.generator, result.ws, novel_az, novel_el))
        label = int(np.asarray(dataset.labels)[row])
        per_image.append({
            "row": row, "shape_id": int(np.asarray(dataset.shape_ids)[row]), "label": label,
            "class_id": result.class_id, "class_source": result.class_source,
            "azimuth": result.azimuth, "elevation": result.elevation,
            "dataset_azimuth": float(target["azimuth"][0]), "dataset_elevation": float(target["elevation"][0]),
            "novel_views": len(others),
            "loss_w_first": result.losses_w[0] if result.losses_w else None,
            "loss_w_last": result.losses_w[-1] if result.losses_w else None,
            "loss_g_first": result.losses_g[0] if result.losses_g else None,
            "loss_g_last": result.losses_g[-1] if result.losses_g else None,
            "seconds": round(time.perf_counter() - began, 3),
        })
    if not per_image:
        raise ValueError("no image was inverted (max_seconds too small, or the dataset is empty)")
    device = method.device
    target_in = _cat(inputs)
    views = {"input view, pivot (stage 1)": view_metrics(_cat(pivots), target_in, perceptual, device),
             "input view, tuned (PTI)": view_metrics(_cat(tuned), target_in, perceptual, device)}
    if novel_targets:
        target_novel = _cat(novel_targets)
        views["novel views, pivot (stage 1)"] = view_metrics(_cat(novel_pivots), target_novel, perceptual, device)
        views["novel views, tuned (PTI)"] = view_metrics(_cat(novel_tuned), target_novel, perceptual, device)
    classified = [p for p in per_image if p["class_id"] is not None]
    results = {
        "description": ("PTI on held-back images: each input view is inverted (stage 1: w and camera; stage 2: the "
                        "generator), then rendered at that view and at the shape's other dataset views. Depth is "
                        "compared with ground truth over the object's mask: depth accuracy = the paper's (EG3D's) MSE "
                        "of normalised depth; abs-rel / RMSE after least-squares scale-and-shift alignment."),
        "settings": asdict(settings),
        "feature_space": feature_name,
        "num_images": len(per_image),
        "num_novel_views": sum(p["novel_views"] for p in per_image),
        "stopped_early": stopped_early,
        "seconds": round(time.perf_counter() - start, 2),
        "class_accuracy": (float(np.mean([p["class_id"] == p["label"] for p in classified]))
                           if classified and same_class_names else None),
        "views": views,
        "per_image": per_image,
    }
    k = min(8, len(per_image))
    rows = [target_in["images"][:k], _cat(pivots)["images"][:k], _cat(tuned)["images"][:k]]
    if novel_targets and all(len(o) for _, o in chosen[:k]):
        rows += [torch.stack([t["images"][0] for t in novel_targets[:k]]), torch.stack([t["images"][0] for t in novel_tuned[:k]])]
    picture = make_grid(upscale_nearest(to_uint8(torch.cat(rows), (0.0, 1.0))), nrow=k)
    return results, picture
