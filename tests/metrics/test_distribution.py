"""Distribution metrics against independent references: torchmetrics, scipy, analytic cases."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from unflat.metrics.distribution import (
    FeatureStats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    mmd2_unbiased,
    polynomial_kernel,
    precision_recall,
)


def _features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / math.sqrt(d)
    return (torch.randn(n, d, generator=g) @ mix) * scale + shift


def test_streamed_stats_match_numpy():
    x = _features(257, 16, 0, shift=1e3)  # large offset: the naive sum-of-outer-products would lose digits
    stats = FeatureStats.empty(16)
    for chunk in x.split(40):
        stats.update(chunk)
    ref = x.double().numpy()
    np.testing.assert_allclose(stats.mean.numpy(), ref.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(ref, rowvar=False), rtol=1e-9, atol=1e-9)


def test_fid_equals_torchmetrics_and_scipy():
    from torchmetrics.image.fid import _compute_fid

    a, b = _features(300, 32, 1), _features(280, 32, 2, shift=0.3, scale=1.2)
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    ours = frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    lib = float(_compute_fid(sa.mean, sa.cov, sb.mean, sb.cov))
    assert ours == pytest.approx(lib, rel=1e-6)
    # and the textbook scipy.linalg.sqrtm formula
    m1, c1, m2, c2 = (t.numpy() for t in (sa.mean, sa.cov, sb.mean, sb.cov))
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    ref = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_fid_self_zero_and_grows_with_noise():
    x = _features(400, 24, 3)
    s = FeatureStats.from_features(x)
    assert frechet_distance(s.mean, s.cov, s.mean, s.cov) < 1e-8
    g = torch.Generator().manual_seed(9)
    noise = torch.randn(x.shape, generator=g)
    values = []
    for level in (0.1, 0.3, 1.0, 3.0):
        n = FeatureStats.from_features(x + level * noise)
        values.append(frechet_distance(s.mean, s.cov, n.mean, n.cov))
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_mmd_matches_torchmetrics():
    from torchmetrics.image.kid import poly_mmd

    x, y = _features(50, 8, 4).double(), _features(50, 8, 5, shift=0.5).double()
    assert float(mmd2_unbiased(x, y)) == pytest.approx(float(poly_mmd(x, y)), rel=1e-10)


def _poly_mmd2_1d_gaussians(mu1, s1, mu2, s2):
    """Population MMD^2 for k(x,y) = (xy+1)^3 in 1-D: k = x^3y^3 + 3x^2y^2 + 3xy + 1, and for
    independent x, y each term factorises into moments, so MMD^2 = sum_j c_j (m_j(P) - m_j(Q))^2."""

    def moments(mu, s):
        return mu, mu**2 + s**2, mu**3 + 3 * mu * s**2

    p, q = moments(mu1, s1), moments(mu2, s2)
    return 3 * (p[0] - q[0]) ** 2 + 3 * (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2


def test_kid_unbiased_on_toy_gaussians():
    g = torch.Generator().manual_seed(0)
    # Same distribution: the unbiased estimate averages to 0, the biased (V-statistic) one does not.
    estimates, biased = [], []
    for _ in range(400):
        x, y = torch.randn(10, 1, generator=g, dtype=torch.float64), torch.randn(10, 1, generator=g, dtype=torch.float64)
        estimates.append(float(mmd2_unbiased(x, y)))
        biased.append(float(polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean() - 2 * polynomial_kernel(x, y).mean()))
    est = torch.tensor(estimates)
    stderr = float(est.std() / math.sqrt(len(est)))
    assert abs(float(est.mean())) < 4 * stderr
    assert float(torch.tensor(biased).mean()) > 10 * stderr
    # Different distributions: the estimate's mean matches the analytic population MMD^2.
    mu2, s2 = 0.5, 1.3
    truth = _poly_mmd2_1d_gaussians(0.0, 1.0, mu2, s2)
    estimates = []
    for _ in range(400):
        x = torch.randn(10, 1, generator=g, dtype=torch.float64)
        y = mu2 + s2 * torch.randn(10, 1, generator=g, dtype=torch.float64)
        estimates.append(float(mmd2_unbiased(x, y)))
    est = torch.tensor(estimates)
    stderr = float(est.std() / math.sqrt(len(est)))
    assert abs(float(est.mean()) - truth) < 4 * stderr, (float(est.mean()), truth, stderr)


def test_kid_subsets_mean_and_std():
    x, y = _features(120, 8, 6), _features(100, 8, 7, shift=1.0)
    mean, std = kernel_inception_distance(x, y, num_subsets=20, subset_size=50, seed=3)
    assert mean > 0 and std > 0
    same_mean, _ = kernel_inception_distance(x, _features(100, 8, 8), num_subsets=20, subset_size=50)
    assert abs(same_mean) < mean / 10
    # reproducible with a seed
    assert kernel_inception_distance(x, y, 20, 50, seed=3) == (mean, std)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_inception_score_analytic_and_torchmetrics():
    # Uniform predictions: IS = 1. Confident, balanced over C classes: IS = C.
    assert inception_score(torch.zeros(40, 7), splits=4)[0] == pytest.approx(1.0)
    confident = torch.full((60, 6), -1e4)
    confident[torch.arange(60), torch.arange(60) % 6] = 0
    assert inception_score(confident, splits=1)[0] == pytest.approx(6.0, rel=1e-6)
    from torchmetrics.image.inception import InceptionScore

    logits = _features(64, 10, 11) * 3
    metric = InceptionScore(feature=torch.nn.Identity(), splits=1)
    metric.update(logits)
    lib_mean, _ = metric.compute()
    assert inception_score(logits, splits=1)[0] == pytest.approx(float(lib_mean), rel=1e-5)


def test_precision_recall_constructed_sets():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    # k=1: every real ball has radius 1 -> the real manifold is [-1, 4].
    fake = torch.tensor([[0.5], [3.9], [10.0], [-5.0]])
    # fake radii with k=1: 0.5->3.4 (to 3.9), 3.9->3.4, 10->6.1, -5->5.5 ; every real point is covered.
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == pytest.approx(0.5)
    assert recall == pytest.approx(1.0)
    same = _features(50, 4, 12)
    assert precision_recall(same, same.clone(), k=3) == (1.0, 1.0)
    far = same + 1000
    assert precision_recall(same, far, k=3) == (0.0, 0.0)
