"""benchmarks/progressive_quality.py: issue 21's top-1 specificity check and its sample sheet (the GPU run itself
is `bash benchmarks/progressive_quality.sh`; `SMOKE=1` runs it end to end on CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def pq():
    spec = importlib.util.spec_from_file_location("progressive_quality", BENCHMARKS / "progressive_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_specificity_counts_own_reconstruction_closest_within_category(pq):
    # 2 categories x 3 shapes; distances[i, j] = Chamfer(reconstruction j, ground truth i)
    d = np.array([[0.1, 0.5, 0.5, 0.0, 0.0, 0.0],
                  [0.2, 0.1, 0.5, 0.0, 0.0, 0.0],   # shape 1: its own is closest -> hit
                  [0.1, 0.5, 0.3, 0.0, 0.0, 0.0],   # shape 2: shape 0's reconstruction is closer -> miss
                  [0.0, 0.0, 0.0, 0.1, 0.2, 0.2],   # other category's zeros must not count
                  [0.0, 0.0, 0.0, 0.3, 0.1, 0.2],
                  [0.0, 0.0, 0.0, 0.3, 0.2, 0.1]])
    out = pq.top1_specificity(d, ["chair"] * 3 + ["car"] * 3)
    assert out["hits"] == [1, 1, 0, 1, 1, 1]
    assert out["per_category"] == pytest.approx({"chair": 2 / 3, "car": 1.0})
    assert out["overall"] == pytest.approx(5 / 6)
    assert out["chance"] == pytest.approx(1 / 3)


def test_one_fixed_reconstruction_scores_chance_or_less(pq):
    """The failure issue 21 measured: a prediction that ignores its input is never specific (ties go to index 0)."""
    rng = np.random.default_rng(0)
    gt = torch.from_numpy(rng.uniform(-0.5, 0.5, (8, 300, 3)).astype(np.float32))
    fixed = gt.mean(0, keepdim=True).expand(8, -1, -1).contiguous()
    d = pq.within_category_matrix(fixed, gt, ["mug"] * 8, "cpu")
    assert pq.top1_specificity(d, ["mug"] * 8)["overall"] <= 1 / 8
    noisy = gt + 0.01 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))  # follows its input
    d = pq.within_category_matrix(noisy, gt, ["mug"] * 4 + ["lamp"] * 4, "cpu")
    assert np.isinf(d[0, 5]) and pq.top1_specificity(d, ["mug"] * 4 + ["lamp"] * 4)["overall"] == 1.0


def test_specificity_block_on_meshes(pq):
    trimesh = pytest.importorskip("trimesh")
    meshes = [trimesh.creation.box(extents=(s, s, s)) for s in (0.4, 0.8, 1.2)]
    gt = torch.stack([torch.as_tensor(np.asarray(trimesh.sample.sample_surface(m, 400, seed=7)[0]), dtype=torch.float32)
                      for m in meshes])
    out = pq.specificity_block(meshes, gt, ["table"] * 3, 400, "cpu")
    assert out["overall"] == 1.0 and out["own_chamfer_mean"] < out["mean_chamfer_to_other_reconstructions"]


def test_sheet_writes_png(pq, tmp_path):
    from PIL import Image

    cell = np.zeros((32, 48, 3), np.uint8)
    pq.make_sheet(tmp_path / "s.png", [("chair 000000\ntop-1: yes", [cell, None, cell]), ("photo", [cell])],
                  ["input", "recon", "gt"], side=40)
    image = Image.open(tmp_path / "s.png")
    assert image.size[1] == 34 + 2 * 42
