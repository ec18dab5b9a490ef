"""Inversion quality: depth errors after alignment (against numpy references) and PTI on held-back images."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from unflat.data.format import open_dataset
from unflat.metrics.depth import aligned_depth_errors, scale_shift
from unflat.metrics.paired import depth_accuracy
from conftest import write_sphere_dataset


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _depth_and_mask(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    depth = 2.0 + torch.rand(3, 1, 12, 12, generator=g, dtype=torch.float64)
    mask = (torch.rand(3, 1, 12, 12, generator=g) > 0.3).float()
    return depth, mask


# ---- depth errors ------------------------------------------------------------------------------------
def test_scale_shift_matches_numpy_least_squares_on_the_mask():
    depth, mask = _depth_and_mask()
    pred = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    s, t = scale_shift(pred, depth, mask)
    for i in range(3):
        m = mask[i, 0].bool().numpy()
        slope, intercept = np.polyfit(pred[i, 0].numpy()[m].astype(np.float64), depth[i, 0].numpy()[m].astype(np.float64), 1)
        assert s[i].item() == pytest.approx(slope, rel=1e-9) and t[i].item() == pytest.approx(intercept, rel=1e-9)


def test_depth_errors_are_zero_for_identical_depth_and_invariant_to_scale_and_shift():
    depth, mask = _depth_and_mask()
    for pred in (depth, 0.37 * depth - 5.0, 12.0 * depth + 0.5):
        errors = aligned_depth_errors(pred, depth, mask)
        assert errors["abs_rel"].abs().max() < 1e-9 and errors["rmse"].abs().max() < 1e-9
        assert depth_accuracy(pred, depth, mask).abs().max() < 1e-9
    # a negative scale is a mirrored surface: not forgiven by the paper's normalisation
    assert depth_accuracy(-depth, depth, mask).min() > 1.0


def test_depth_errors_match_a_direct_computation_and_grow_with_noise():
    depth, mask = _depth_and_mask()
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(depth.shape, generator=g)
    previous = None
    for sigma in (0.01, 0.05, 0.2, 0.8):
        pred = 3.0 * depth + 1.0 + sigma * noise
        errors = aligned_depth_errors(pred, depth, mask)
        # independent reference for image 0: numpy lstsq, then the definitions
        m = mask[0, 0].bool().numpy()
        p, d = pred[0, 0].numpy()[m].astype(np.float64), depth[0, 0].numpy()[m].astype(np.float64)
        (a, b), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), d, rcond=None)
        aligned = a * p + b
        assert errors["abs_rel"][0].item() == pytest.approx(np.mean(np.abs(aligned - d) / d), rel=1e-6)
        assert errors["rmse"][0].item() == pytest.approx(np.sqrt(np.mean((aligned - d) ** 2)), rel=1e-6)
        current = (errors["abs_rel"].mean().item(), errors["rmse"].mean().item(), depth_accuracy(pred, depth, mask).mean().item())
        if previous is not None:
            assert all(c > p for c, p in zip(current, previous))
        previous = current


def test_background_pixels_do_not_count_and_bad_inputs_are_errors():
    depth, mask = _depth_and_mask()
    pred = depth.clone()
    pred[mask == 0] = 1e6  # anything off the mask
    assert aligned_depth_errors(pred, depth, mask)["rmse"].max() < 1e-9
    with pytest.raises(ValueError, match="2 foreground"):
        aligned_depth_errors(depth, depth, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="positive"):
        aligned_depth_errors(depth, depth - 10, mask)


# ---- PTI on held-back images ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def held_back(tmp_path_factory) -> Path:
    """4 sphere shapes x 3 posed views, 16x16, 2 classes, with depth: data the generator never saw."""
    return write_sphere_dataset(tmp_path_factory.mktemp("held") / "mv", num_shapes=4, views_per_shape=3, seed=5)


def _tiny_mvtriplane(data: Path):
    from unflat.methods.base import TrainContext
    from unflat.methods.mvtriplane import MVTriplane, tiny

    torch.manual_seed(0)
    cfg = replace(tiny(), data=data, device="cpu")
    return MVTriplane(cfg, open_dataset(data).info, TrainContext(device=torch.device("cpu")))


def test_held_back_views_take_classes_in_turn_and_keep_the_other_views(tmp_path: Path):
    from unflat.metrics.inversion import held_back_views

    data = open_dataset(write_sphere_dataset(tmp_path / "d", num_shapes=6, views_per_shape=3))
    chosen = held_back_views(data, 4, seed=0)
    labels, shapes = np.asarray(data.labels), np.asarray(data.shape_ids)
    assert [int(labels[row]) for row, _ in chosen][:2] in ([0, 1], [1, 0])
    assert len({int(shapes[row]) for row, _ in chosen}) == 4
    for row, others in chosen:
        assert len(others) == 2 and all(shapes[o] == shapes[row] and o != row for o in others)
    assert held_back_views(data, 4, seed=0) == chosen


def test_inversion_quality_improves_with_more_tuning_steps(held_back: Path):
    from unflat.methods.pti import discriminator_feature_fn
    from unflat.metrics.inversion import InversionSettings, evaluate_inversions

    dataset = open_dataset(held_back)
    method = _tiny_mvtriplane(held_back)
    feature_fn = discriminator_feature_fn(method.D)

    def run(steps_g: int) -> dict:
        settings = InversionSettings(num_images=2, steps_w=4, steps_g=steps_g, camera="dataset", seed=0)
        results, picture = evaluate_inversions(method, dataset, settings, feature_fn, "discriminator")
        assert picture.dtype == np.uint8 and picture.ndim == 3
        return results

    few, more = run(0), run(20)
    assert few["num_images"] == 2 and few["num_novel_views"] == 4
    tuned_few, tuned_more = few["views"]["input view, tuned (PTI)"], more["views"]["input view, tuned (PTI)"]
    # stage 1 is identical (same seed), so the pivot's numbers are too; tuning on the image raises its PSNR
    assert few["views"]["input view, pivot (stage 1)"]["psnr"] == more["views"]["input view, pivot (stage 1)"]["psnr"]
    assert tuned_few["psnr"]["mean"] == pytest.approx(few["views"]["input view, pivot (stage 1)"]["psnr"]["mean"])
    assert tuned_more["psnr"]["mean"] > tuned_few["psnr"]["mean"] + 0.5
    for view in more["views"].values():
        for key in ("depth_accuracy", "depth_abs_rel", "depth_rmse", "ssim", "silhouette_iou"):
            assert all(np.isfinite(v) for v in view[key]["values"])
    assert len(more["views"]["novel views, tuned (PTI)"]["psnr"]["values"]) == 4
    assert more["per_image"][0]["azimuth"] == pytest.approx(more["per_image"][0]["dataset_azimuth"], abs=1e-4)


def test_evaluate_command_inversion_metric(held_back: Path, tmp_path: Path, capsys):
    from unflat import cli

    train_data = write_sphere_dataset(tmp_path / "train", num_shapes=8)
    assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(train_data), "--out", str(tmp_path / "run"),
                     "--max-steps", "1", "--no-tensorboard"]) == 0
    out = tmp_path / "inv" / "metrics.json"
    capsys.readouterr()
    assert cli.main(["evaluate", str(tmp_path / "run"), "--data", str(held_back), "--metrics", "inversion",
                     "--num-inversions", "3", "--inversion-steps-w", "2", "--inversion-steps-g", "2",
                     "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    inversion = results["inversion"]
    assert inversion["num_images"] == 3 and inversion["settings"]["steps_w"] == 2
    assert set(inversion["views"]) == {"input view, pivot (stage 1)", "input view, tuned (PTI)",
                                       "novel views, pivot (stage 1)", "novel views, tuned (PTI)"}
    assert "images" not in results and "shapes" not in results  # only what was asked for
    assert "lpips" in results["skipped"]  # no LPIPS weights and no backbone here: said so, not faked
    report = out.with_name("report.md").read_text()
    assert "Inversion of held-back images" in report and "depth abs-rel" in report
    assert "inversion, input view, tuned (PTI)" in capsys.readouterr().out
    # a generator's default metrics do not include the slow inversion
    from unflat.evaluate import check_metrics

    assert "inversion" not in check_metrics((), "generator")[0]
