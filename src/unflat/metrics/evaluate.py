"""The two entry points ``unflat evaluate`` and the methods use.

``evaluate_generator``: generated images (and optionally generated shapes) against reference data:
FID/KID/IS/precision-recall on one named backbone; COV/MMD/1-NNA on point clouds.
``evaluate_reconstruction``: predictions against their own targets: MSE/PSNR/SSIM/LPIPS,
silhouette IoU, depth accuracy, Chamfer/F-score/volume IoU against ground-truth meshes.

Each returns a dataclass with ``to_dict()``/``to_json()``; every number that depends on a
network carries that network's name and weights hash next to it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from unflat.metrics import paired
from unflat.metrics import shapes as shape_metrics
from unflat.metrics.distribution import DistributionReport, FeatureExtractor, distribution_metrics, extract_features, to_unit_images
from unflat.metrics.lpips import PerceptualDistance
from unflat.metrics.reference_cache import ReferenceStats, compute_reference_stats


def _batches(images: Tensor | np.ndarray | Iterable[Tensor], batch_size: int, device) -> Iterable[Tensor]:
    if isinstance(images, (Tensor, np.ndarray)):
        for start in range(0, len(images), batch_size):
            yield to_unit_images(images[start : start + batch_size]).to(device)
    else:
        for batch in images:
            yield batch.to(device)


# ---- generators ---------------------------------------------------------------------------------------
@dataclass
class GeneratorEvaluation:
    """Distribution metrics of rendered samples and, when shapes were given, 3D set metrics."""

    images: DistributionReport | None = None
    shapes: shape_metrics.GenerationShapeMetrics | None = None

    def to_dict(self) -> dict:
        return {
            "images": None if self.images is None else self.images.to_dict(),
            "shapes": None if self.shapes is None else self.shapes.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def evaluate_generator(
    fake_images: Tensor | np.ndarray | Iterable[Tensor] | None,
    reference: ReferenceStats | Tensor | np.ndarray | None,
    extractor: FeatureExtractor | None,
    metrics: Sequence[str] = ("fid", "kid", "is", "pr"),
    fake_clouds: Tensor | None = None,
    reference_clouds: Tensor | None = None,
    chamfer_variant: shape_metrics.ChamferVariant = "l2_squared",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> GeneratorEvaluation:
    """Evaluate a generator's samples.

    fake_images: float [N,3,H,W] in [0,1], uint8 [N,H,W,3], or an iterable of [B,3,H,W] batches.
    reference: a ``ReferenceStats`` (e.g. from ``cached_reference_stats``) or reference images in
    the same forms as fake_images. extractor: the backbone for all image metrics.
    fake_clouds / reference_clouds: optional point clouds [M,P,3] / [K,P,3] for COV/MMD/1-NNA.
    """
    result = GeneratorEvaluation()
    if fake_images is not None:
        if extractor is None or reference is None:
            raise ValueError("image metrics need a feature extractor and reference images or statistics")
        if not isinstance(reference, ReferenceStats):
            reference = compute_reference_stats(reference, extractor, batch_size, device, seed=seed)
        elif reference.weights_hash != extractor.weights_hash:
            raise ValueError(
                f"reference statistics were computed with {reference.backbone_name} ({reference.weights_hash}), "
                f"not with {extractor.name} ({extractor.weights_hash})"
            )
        fake_features, fake_logits = extract_features(extractor, _batches(fake_images, batch_size, device), with_logits="is" in metrics)
        result.images = distribution_metrics(
            reference.features,
            fake_features,
            extractor,
            fake_logits=fake_logits,
            real_stats=reference.stats,
            kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size,
            metrics=metrics,
            seed=seed,
            device=device,
        )
    if fake_clouds is not None and reference_clouds is not None:
        result.shapes = shape_metrics.generation_shape_metrics(fake_clouds.to(device), reference_clouds.to(device), chamfer_variant)
    return result


# ---- reconstructions --------------------------------------------------------------------------------------
@dataclass
class MetricSummary:
    """Mean of a per-item metric plus the per-item values."""

    mean: float
    values: list[float]

    @staticmethod
    def of(values: Tensor | Sequence[float]) -> "MetricSummary":
        vals = [float(v) for v in (values.tolist() if isinstance(values, Tensor) else values)]
        return MetricSummary(float(np.mean(vals)) if vals else float("nan"), vals)


@dataclass
class ReconstructionEvaluation:
    """Paired metrics of predictions against their targets. ``perceptual_backbone`` names the
    network behind ``lpips`` (e.g. "lpips-alex-v0.1" or the labelled domain-backbone stand-in).
    ``fid``/``kid``: the distribution of the predicted renders against that of their targets (the
    progressive paper's same-/novel-view FID), on the backbone named by ``fid_backbone``/``fid_weights_hash``."""

    mse: MetricSummary | None = None
    psnr: MetricSummary | None = None
    ssim: MetricSummary | None = None
    lpips: MetricSummary | None = None
    perceptual_backbone: str | None = None
    perceptual_weights_hash: str | None = None
    silhouette_iou: MetricSummary | None = None
    depth_accuracy: MetricSummary | None = None
    chamfer: MetricSummary | None = None
    chamfer_variant: str | None = None
    fscore: dict[str, MetricSummary] = field(default_factory=dict)
    volume_iou: MetricSummary | None = None
    fid: float | None = None
    kid: float | None = None
    fid_backbone: str | None = None
    fid_weights_hash: str | None = None
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _set_distance(pred_images: Tensor, target_images: Tensor, extractor: FeatureExtractor, metrics: Sequence[str],
                  batch_size: int, device, seed: int) -> tuple[float | None, float | None, str, str]:
    """(FID, KID mean, backbone name, weights hash) of pred [N,3,H,W] vs target [N,3,H,W] images in [0,1]."""
    if len(pred_images) < 2 or len(target_images) < 2:
        raise ValueError("FID/KID of reconstructions need at least 2 images on each side")
    wanted = [m for m in metrics if m in ("fid", "kid")]
    report = evaluate_generator(pred_images, target_images, extractor, metrics=wanted, batch_size=batch_size, device=device,
                                kid_subset_size=min(1000, len(pred_images), len(target_images)), seed=seed).images
    return report.fid, report.kid_mean, report.backbone_name, report.weights_hash


def evaluate_reconstruction(
    pred_images: Tensor | None = None,
    target_images: Tensor | None = None,
    pred_masks: Tensor | None = None,
    target_masks: Tensor | None = None,
    pred_depth: Tensor | None = None,
    reference_depth: Tensor | None = None,
    pred_meshes: Sequence | None = None,
    gt_meshes: Sequence | None = None,
    perceptual: PerceptualDistance | None = None,
    num_points: int = 10_000,
    fscore_thresholds: Sequence[float] = (0.01, 0.02, 0.05),
    chamfer_variant: shape_metrics.ChamferVariant = "l2_squared",
    volume_resolution: int = 64,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    extractor: FeatureExtractor | None = None,
    distribution: Sequence[str] = ("fid", "kid"),
) -> ReconstructionEvaluation:
    """Every paired metric for which both sides are given.

    pred_images/target_images: [B,3,H,W] in [0,1]; masks: [B,1,H,W]; depth: [B,1,H,W] (depth
    accuracy is computed over the target mask when given, else over the predicted mask, else
    everywhere); meshes: trimesh.Trimesh lists of equal length, compared in world units.
    extractor: a feature backbone for FID/KID (``distribution``) of the predicted images as a set against
    the target images as a set (needs at least 2 of each; KID subsets of all of them).
    """
    out = ReconstructionEvaluation(settings={"num_points": num_points, "volume_resolution": volume_resolution, "seed": seed})
    if pred_images is not None and target_images is not None:
        out.mse = MetricSummary.of(paired.mse(pred_images, target_images))
        out.psnr = MetricSummary.of(paired.psnr(pred_images, target_images))
        out.ssim = MetricSummary.of(paired.ssim(pred_images, target_images))
        if perceptual is not None:
            values = [
                perceptual(pred_images[i : i + batch_size].to(device), target_images[i : i + batch_size].to(device)).cpu()
                for i in range(0, len(pred_images), batch_size)
            ]
            out.lpips = MetricSummary.of(torch.cat(values))
            out.perceptual_backbone, out.perceptual_weights_hash = perceptual.name, perceptual.weights_hash
        if extractor is not None and distribution:
            out.fid, out.kid, out.fid_backbone, out.fid_weights_hash = _set_distance(
                pred_images, target_images, extractor, distribution, batch_size, device, seed)
    if pred_masks is not None and target_masks is not None:
        out.silhouette_iou = MetricSummary.of(paired.silhouette_iou(pred_masks, target_masks))
    if pred_depth is not None and reference_depth is not None:
        mask = target_masks if target_masks is not None else pred_masks
        out.depth_accuracy = MetricSummary.of(paired.depth_accuracy(pred_depth, reference_depth, mask))
    if pred_meshes is not None and gt_meshes is not None:
        if len(pred_meshes) != len(gt_meshes):
            raise ValueError(f"{len(pred_meshes)} predicted meshes but {len(gt_meshes)} ground-truth meshes")
        chamfers, ious, fscores = [], [], {f"{t:g}": [] for t in fscore_thresholds}
        for i, (pred, gt) in enumerate(zip(pred_meshes, gt_meshes)):
            p = shape_metrics.sample_points(pred, num_points, seed=seed + i).to(device)
            g = shape_metrics.sample_points(gt, num_points, seed=seed + 10_000 + i).to(device)
            chamfers.append(float(shape_metrics.chamfer_distance(p, g, chamfer_variant)))
            for f in shape_metrics.fscore(p, g, fscore_thresholds):
                fscores[f"{f.threshold:g}"].append(f.fscore)
            ious.append(shape_metrics.mesh_volume_iou(pred, gt, volume_resolution, device=device))
        out.chamfer, out.chamfer_variant = MetricSummary.of(chamfers), chamfer_variant
        out.fscore = {k: MetricSummary.of(v) for k, v in fscores.items()}
        out.volume_iou = MetricSummary.of(ious)
    return out


def evaluate_same_and_novel_views(
    same: Mapping[str, Tensor | None],
    novel: Mapping[str, Tensor | None],
    pred_meshes: Sequence | None = None,
    gt_meshes: Sequence | None = None,
    num_points: int = 10_000,
    **common: Any,
) -> dict[str, ReconstructionEvaluation]:
    """The single-view reconstruction protocol (progressive paper, Sec. 4): ``evaluate_reconstruction`` of the
    views rendered at the input's camera ("same_view", with the shape metrics, view-independent, when
    ground-truth meshes are given) and at another view of the shape ("novel_view").

    same/novel: evaluate_reconstruction's image/mask/depth arguments (a reconstructor's ``evaluate_views``
    gives them); common: its other arguments (perceptual, device, seed, batch_size, extractor, ...).
    """
    return {
        "same_view": evaluate_reconstruction(**same, pred_meshes=pred_meshes if gt_meshes else None,
                                             gt_meshes=gt_meshes or None, num_points=num_points, **common),
        "novel_view": evaluate_reconstruction(**novel, **common),
    }
