"""End-to-end: reference cache keyed by content + backbone, evaluate_generator / evaluate_reconstruction."""

import json

import numpy as np
import pytest
import torch
import trimesh

from unflat.metrics import cached_reference_stats, content_hash, evaluate_generator, evaluate_reconstruction
from unflat.metrics.backbones import DomainBackboneExtractor
from unflat.metrics.distribution import FeatureStats, frechet_distance
from unflat.metrics.lpips import PerceptualDistance
from unflat.nets.domain_backbone import DomainBackbone, DomainBackboneConfig


def _extractor(seed: int = 0) -> DomainBackboneExtractor:
    torch.manual_seed(seed)
    return DomainBackboneExtractor(DomainBackbone(DomainBackboneConfig(resolution=16, widths=(8, 16), num_classes=3)))


def _uint8_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def test_reference_cache_hit_miss_and_keys(tmp_path):
    images = _uint8_images(40, 0)
    extractor = _extractor()
    first = cached_reference_stats(images, extractor, tmp_path, batch_size=16, max_features=30)
    assert not first.from_cache and first.features.shape == (30, 16) and first.stats.count == 40
    again = cached_reference_stats(images, extractor, tmp_path, batch_size=7, max_features=30)
    assert again.from_cache and torch.equal(again.stats.mean, first.stats.mean) and torch.equal(again.features, first.features)
    # streamed statistics equal the statistics of all features at once
    all_feats = extractor(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(first.stats.mean, FeatureStats.from_features(all_feats).mean, atol=1e-6)
    # other pixels or another backbone: a new entry
    changed = images.copy()
    changed[0, 0, 0, 0] ^= 1
    assert content_hash(changed) != content_hash(images)
    assert not cached_reference_stats(changed, extractor, tmp_path, max_features=30).from_cache
    assert not cached_reference_stats(images, _extractor(seed=1), tmp_path, max_features=30).from_cache
    assert len(list(tmp_path.glob("reference-*.safetensors"))) == 3


def test_evaluate_generator_records_backbone(tmp_path):
    extractor = _extractor()
    real = _uint8_images(48, 1)
    reference = cached_reference_stats(real, extractor, tmp_path)
    fake = torch.from_numpy(_uint8_images(40, 2)).permute(0, 3, 1, 2).float() / 255
    clouds = torch.rand(4, 64, 3, generator=torch.Generator().manual_seed(0))
    result = evaluate_generator(
        [fake[:20], fake[20:]], reference, extractor, kid_subsets=5, kid_subset_size=20,
        fake_clouds=clouds, reference_clouds=clouds + 0.01,
    )  # fmt: skip
    report = result.images
    assert report.backbone_name == extractor.name and report.weights_hash == extractor.weights_hash
    assert "domain backbone" in report.label and "not comparable" in report.label
    assert report.fid > 0 and report.inception_score_mean >= 1 and 0 <= report.precision <= 1
    stats = FeatureStats.from_features(extractor(fake))
    assert report.fid == pytest.approx(frechet_distance(reference.stats.mean, reference.stats.cov, stats.mean, stats.cov), rel=1e-6)
    assert result.shapes.coverage == 1.0
    data = json.loads(result.to_json())
    assert data["images"]["backbone_kind"] == "domain backbone"
    with pytest.raises(ValueError, match="computed with"):
        evaluate_generator(fake, reference, _extractor(seed=5))


def test_evaluate_reconstruction_all_parts():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 16, 16, generator=g)
    mask = (torch.rand(2, 1, 16, 16, generator=g) > 0.3).float()
    depth = torch.rand(2, 1, 16, 16, generator=g) + 1
    backbone = DomainBackbone(DomainBackboneConfig(resolution=16, widths=(8, 16)))
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    result = evaluate_reconstruction(
        pred_images=pred, target_images=pred.clone(), pred_masks=mask, target_masks=mask,
        pred_depth=depth, reference_depth=2 * depth + 1, pred_meshes=[sphere], gt_meshes=[sphere.copy()],
        perceptual=PerceptualDistance.from_domain_backbone(backbone), num_points=2000, volume_resolution=16,
    )  # fmt: skip
    assert result.psnr.mean == float("inf") and result.ssim.mean == pytest.approx(1.0)
    assert result.lpips.mean == pytest.approx(0.0, abs=1e-6) and "not LPIPS" in result.perceptual_backbone
    assert result.silhouette_iou.mean == 1.0 and result.depth_accuracy.mean == pytest.approx(0.0, abs=1e-12)
    assert result.volume_iou.mean == 1.0 and result.chamfer.mean < 2e-3 and result.fscore["0.05"].mean > 0.9
    json.loads(result.to_json().replace("Infinity", "1e999"))


def test_same_and_novel_views_is_evaluate_reconstruction_of_each_view():
    from unflat.metrics.evaluate import evaluate_reconstruction, evaluate_same_and_novel_views

    g = torch.Generator().manual_seed(0)
    views = {name: {"pred_images": torch.rand(3, 3, 16, 16, generator=g), "target_images": torch.rand(3, 3, 16, 16, generator=g),
                    "pred_masks": (torch.rand(3, 1, 16, 16, generator=g) > 0.5).float(),
                    "target_masks": (torch.rand(3, 1, 16, 16, generator=g) > 0.5).float()} for name in ("same", "novel")}
    both = evaluate_same_and_novel_views(views["same"], views["novel"], pred_meshes=[None] * 3, gt_meshes=None)
    assert both["same_view"].to_dict() == evaluate_reconstruction(**views["same"]).to_dict()
    assert both["novel_view"].to_dict() == evaluate_reconstruction(**views["novel"]).to_dict()
