"""Image-distribution metrics on features of a pluggable backbone: FID, KID, Inception Score,
precision/recall.

Every number comes out of a dataclass that names the backbone that produced the features and a
hash of its weights, because an FID on unflat's own domain backbone and an FID on the standard
Inception-v3 are different numbers that must never be compared with each other.

Statistics are accumulated in float64 (the covariance of 2048-d features in float32 loses
several digits of FID); features themselves are kept in float32.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

DOMAIN_BACKBONE = "domain backbone"
STANDARD_INCEPTION = "standard Inception-v3"
IMAGENET_EFFICIENTNET = "ImageNet EfficientNet-Lite0"


@runtime_checkable
class FeatureExtractor(Protocol):
    """A feature network for distribution metrics.

    name: what the network is (e.g. "unflat-domain-resnet-64px", "inception-v3-fid").
    weights_hash: short content hash of its weights (see ``unflat.pretrained.hash_state_dict``).
    kind: ``DOMAIN_BACKBONE``, ``STANDARD_INCEPTION`` or ``IMAGENET_EFFICIENTNET`` (or another plain-words label).
    info: how the network was trained (e.g. ``held_out_accuracy``, ``source``), empty for published weights.
    __call__: images [B,3,H,W] float in [0,1] -> features [B,D].

    Extractors that also classify may provide ``logits(images) -> [B,C]`` for the Inception Score.
    """

    name: str
    weights_hash: str
    kind: str
    info: dict

    def __call__(self, images: Tensor) -> Tensor: ...


# ---- feature statistics ------------------------------------------------------------------------
@dataclass
class FeatureStats:
    """Streaming mean/covariance of features in float64 (Chan et al.'s pairwise update, which
    stays accurate where the naive sum of outer products cancels catastrophically).

    mean: [D] float64, m2: [D,D] float64 sum of centred outer products, count: samples seen.
    """

    mean: Tensor
    m2: Tensor
    count: int = 0

    @staticmethod
    def empty(dim: int) -> "FeatureStats":
        return FeatureStats(torch.zeros(dim, dtype=torch.float64), torch.zeros(dim, dim, dtype=torch.float64), 0)

    @staticmethod
    def from_features(features: Tensor) -> "FeatureStats":
        """features: [N,D]."""
        stats = FeatureStats.empty(features.shape[1])
        stats.update(features)
        return stats

    def update(self, features: Tensor) -> "FeatureStats":
        """Add a batch of features [B,D]; returns self."""
        x = features.detach().to("cpu", torch.float64).reshape(features.shape[0], -1)
        n_b = x.shape[0]
        if n_b == 0:
            return self
        mean_b = x.mean(0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + torch.outer(delta, delta) * (n_a * n_b / n)
        self.count = n
        return self

    @property
    def cov(self) -> Tensor:
        """[D,D] unbiased sample covariance (N-1 denominator, as numpy.cov and the FID reference)."""
        if self.count < 2:
            raise ValueError(f"covariance needs at least 2 samples, got {self.count}")
        return self.m2 / (self.count - 1)


# ---- FID -----------------------------------------------------------------------------------------
def _psd_sqrt(matrix: Tensor) -> Tensor:
    """Symmetric PSD square root via eigh, clamping the tiny negative eigenvalues round-off makes."""
    eigvals, eigvecs = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (eigvecs * eigvals.clamp_min(0).sqrt()) @ eigvecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (mu: [D], sigma: [D,D]).

    d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^{1/2}).
    tr((s1 s2)^{1/2}) = tr((s1^{1/2} s2 s1^{1/2})^{1/2}): the inner matrix is symmetric PSD, so
    its eigenvalues are real and non-negative up to round-off, which avoids the complex
    square roots that scipy.linalg.sqrtm of the non-symmetric product runs into.
    """
    mu1, mu2 = mu1.double(), mu2.double()
    sigma1, sigma2 = sigma1.double(), sigma2.double()
    sqrt1 = _psd_sqrt(sigma1)
    inner = sqrt1 @ sigma2 @ sqrt1
    eigvals = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0)
    trace_sqrt = eigvals.sqrt().sum()
    diff = mu1 - mu2
    value = diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return float(value.clamp_min(0))


def fid_from_stats(real: FeatureStats, fake: FeatureStats) -> float:
    return frechet_distance(real.mean, real.cov, fake.mean, fake.cov)


# ---- KID -----------------------------------------------------------------------------------------
def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x, y) = (x.y / d + 1)^3, the kernel of Binkowski et al. (2018). x: [N,D], y: [M,D] -> [N,M]."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased estimate of MMD^2 with the cubic polynomial kernel. x: [N,D], y: [M,D] (float64)."""
    n, m = x.shape[0], y.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return sum_xx / (n * (n - 1)) + sum_yy / (m * (m - 1)) - 2 * k_xy.sum() / (n * m)


def kernel_inception_distance(
    real: Tensor, fake: Tensor, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID as in Binkowski et al.: the unbiased MMD^2 averaged over ``num_subsets`` random subsets
    of ``min(subset_size, N_real, N_fake)`` samples drawn without replacement from each set.

    real: [N,D], fake: [M,D]. Returns (mean, std over subsets).
    """
    real, fake = real.double(), fake.double()
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    generator = torch.Generator().manual_seed(seed)
    values = torch.empty(num_subsets, dtype=torch.float64)
    for i in range(num_subsets):
        idx_r = torch.randperm(real.shape[0], generator=generator)[:size].to(real.device)
        idx_f = torch.randperm(fake.shape[0], generator=generator)[:size].to(fake.device)
        values[i] = mmd2_unbiased(real[idx_r], fake[idx_f]).cpu()
    std = float(values.std()) if num_subsets > 1 else 0.0
    return float(values.mean()), std


# ---- Inception Score -----------------------------------------------------------------------------
def inception_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split, in order (no shuffle). logits: [N,C].
    Returns (mean, std over splits); std is 0 for one split."""
    log_p = torch.log_softmax(logits.double(), dim=1)
    scores = []
    for chunk in log_p.chunk(splits, dim=0):
        log_marginal = torch.logsumexp(chunk, dim=0) - math.log(chunk.shape[0])
        kl = (chunk.exp() * (chunk - log_marginal)).sum(1).mean()
        scores.append(kl.exp())
    values = torch.stack(scores)
    return float(values.mean()), float(values.std()) if len(scores) > 1 else 0.0


# ---- precision / recall ----------------------------------------------------------------------------
def _pairwise_distances(a: Tensor, b: Tensor, chunk: int = 4096) -> Tensor:
    """Euclidean distances [N,M] computed in row chunks (float64 avoids cdist's cancellation)."""
    return torch.cat([torch.cdist(a[i : i + chunk].double(), b.double()) for i in range(0, a.shape[0], chunk)])


def _knn_radii(features: Tensor, k: int) -> Tensor:
    """Distance of each sample to its k-th nearest neighbour in its own set (self excluded). [N]."""
    if features.shape[0] <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples, got {features.shape[0]}")
    dist = _pairwise_distances(features, features)
    return dist.kthvalue(k + 1, dim=1).values  # the 1st smallest is the sample itself (0)


def _coverage_fraction(queries: Tensor, support: Tensor, radii: Tensor) -> float:
    """Fraction of queries that fall inside at least one ball (support[j], radii[j])."""
    inside = _pairwise_distances(queries, support) <= radii[None, :]
    return float(inside.any(dim=1).double().mean())


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifolds.

    precision: fraction of fake samples inside the real manifold (union of balls around each real
    sample reaching its k-th nearest real neighbour); recall: the same with the roles swapped.
    real: [N,D], fake: [M,D].
    """
    precision = _coverage_fraction(fake, real, _knn_radii(real, k))
    recall = _coverage_fraction(real, fake, _knn_radii(fake, k))
    return precision, recall


# ---- feature extraction -----------------------------------------------------------------------------
@torch.no_grad()
def extract_features(
    extractor: FeatureExtractor, images: Iterable[Tensor], with_logits: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Run ``extractor`` over batches of images [B,3,H,W] in [0,1].

    Returns (features [N,D] float32 on CPU, logits [N,C] or None). Logits are collected only when
    asked for and when the extractor has a ``logits`` method.
    """
    feats, logits = [], []
    use_logits = with_logits and hasattr(extractor, "logits")
    for batch in images:
        if use_logits and hasattr(extractor, "features_and_logits"):
            f, lg = extractor.features_and_logits(batch)
            logits.append(lg.float().cpu())
        else:
            f = extractor(batch)
            if use_logits:
                logits.append(extractor.logits(batch).float().cpu())
        feats.append(f.float().cpu())
    if not feats:
        raise ValueError("no images given")
    return torch.cat(feats), (torch.cat(logits) if logits else None)


def batches(images: Tensor | np.ndarray, batch_size: int = 64, device: str | torch.device = "cpu") -> Iterable[Tensor]:
    """Yield [B,3,H,W] float batches in [0,1] from a float tensor [N,3,H,W] in [0,1] or a uint8
    array/tensor [N,H,W,3] (e.g. a memory-mapped ``images.npy``)."""
    for start in range(0, len(images), batch_size):
        yield to_unit_images(images[start : start + batch_size]).to(device)


def to_unit_images(images: Tensor | np.ndarray) -> Tensor:
    """uint8 [N,H,W,3] (array or tensor) -> float [N,3,H,W] in [0,1]; float [N,3,H,W] passes through."""
    if isinstance(images, np.ndarray):
        # a read-only memory map is copied (one batch): PyTorch warns on tensors over read-only memory
        images = torch.from_numpy(np.require(images, requirements=("C", "W")))
    if images.dtype == torch.uint8:
        if images.shape[-1] not in (1, 3):
            raise ValueError(f"uint8 images must be [N,H,W,3], got {tuple(images.shape)}")
        return images.permute(0, 3, 1, 2).contiguous().float() / 255.0
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"float images must be [N,3,H,W] in [0,1], got {tuple(images.shape)}")
    return images.float()


# ---- report ----------------------------------------------------------------------------------------
@dataclass
class DistributionReport:
    """Distribution metrics of generated images against reference images, on one backbone.

    label says in words which backbone made the features, e.g.
    "FID/KID/IS on the domain backbone unflat-domain-resnet (weights 3fa2...), not comparable to
    published Inception-v3 numbers".
    """

    backbone_name: str
    weights_hash: str
    backbone_kind: str
    label: str
    num_real: int
    num_fake: int
    fid: float | None = None
    kid_mean: float | None = None
    kid_std: float | None = None
    inception_score_mean: float | None = None
    inception_score_std: float | None = None
    precision: float | None = None
    recall: float | None = None
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def backbone_label(extractor: FeatureExtractor) -> str:
    kind = getattr(extractor, "kind", "unknown backbone")
    text = f"on the {kind} '{extractor.name}' (weights {extractor.weights_hash})"
    if kind == DOMAIN_BACKBONE:
        text += ": unflat's own feature network; not comparable to published Inception-v3 numbers"
    return text


def distribution_metrics(
    real_features: Tensor,
    fake_features: Tensor,
    extractor: FeatureExtractor,
    fake_logits: Tensor | None = None,
    real_stats: FeatureStats | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    pr_k: int = 3,
    metrics: Iterable[str] = ("fid", "kid", "is", "pr"),
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> DistributionReport:
    """All distribution metrics from precomputed features (real: [N,D], fake: [M,D]).

    ``real_stats`` (e.g. from ``cached_reference_stats``) replaces the statistics of
    ``real_features`` for FID when given. IS needs ``fake_logits`` [M,C]. ``device``: where the float64
    set computations run (FID's matrix square roots, KID's 100 kernel subsets, precision/recall's
    distances): on a GPU they take a second where several processes sharing a CPU took minutes.
    """
    wanted = set(metrics)
    unknown = wanted - {"fid", "kid", "is", "pr"}
    if unknown:
        raise ValueError(f"unknown distribution metrics {sorted(unknown)}; choose from fid, kid, is, pr")
    report = DistributionReport(
        backbone_name=extractor.name,
        weights_hash=extractor.weights_hash,
        backbone_kind=getattr(extractor, "kind", "unknown backbone"),
        label=backbone_label(extractor),
        num_real=int(real_stats.count if real_stats is not None else real_features.shape[0]),
        num_fake=int(fake_features.shape[0]),
        settings={"kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "is_splits": is_splits, "pr_k": pr_k, "seed": seed},
    )
    real_features, fake_features = real_features.to(device), fake_features.to(device)
    if "fid" in wanted:
        stats = real_stats if real_stats is not None else FeatureStats.from_features(real_features)
        fake = FeatureStats.from_features(fake_features)
        report.fid = frechet_distance(stats.mean.to(device), stats.cov.to(device), fake.mean.to(device), fake.cov.to(device))
    if "kid" in wanted:
        report.kid_mean, report.kid_std = kernel_inception_distance(real_features, fake_features, kid_subsets, kid_subset_size, seed)
    if "is" in wanted and fake_logits is not None:
        report.inception_score_mean, report.inception_score_std = inception_score(fake_logits, is_splits)
    if "pr" in wanted:
        report.precision, report.recall = precision_recall(real_features, fake_features, pr_k)
    return report
