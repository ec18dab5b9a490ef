"""unflat's evaluation package: one set of metrics for every method and for ``unflat evaluate``.

- ``distribution``: FID, KID, Inception Score, precision/recall on a named feature backbone.
- ``backbones``: the domain backbone (offline default) and the standard Inception-v3 extractors.
- ``reference_cache``: dataset statistics cached by content hash + backbone hash.
- ``paired``: MSE, PSNR, SSIM, silhouette IoU, depth accuracy; ``lpips``: LPIPS and its labelled
  domain-backbone stand-in.
- ``shapes``: Chamfer, F-score, volume IoU, COV/MMD/1-NNA.
- ``evaluate``: ``evaluate_generator`` and ``evaluate_reconstruction``.

See docs/metrics.md.
"""

from unflat.metrics.distribution import (
    DOMAIN_BACKBONE,
    STANDARD_INCEPTION,
    DistributionReport,
    FeatureExtractor,
    FeatureStats,
    distribution_metrics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from unflat.metrics.evaluate import GeneratorEvaluation, ReconstructionEvaluation, evaluate_generator, evaluate_reconstruction
from unflat.metrics.reference_cache import ReferenceStats, cached_reference_stats, compute_reference_stats, content_hash

__all__ = [
    "DOMAIN_BACKBONE",
    "STANDARD_INCEPTION",
    "DistributionReport",
    "FeatureExtractor",
    "FeatureStats",
    "GeneratorEvaluation",
    "ReconstructionEvaluation",
    "ReferenceStats",
    "cached_reference_stats",
    "compute_reference_stats",
    "content_hash",
    "distribution_metrics",
    "evaluate_generator",
    "evaluate_reconstruction",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "precision_recall",
]
