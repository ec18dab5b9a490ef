"""The switches behind the progressive paper's ablations (same-view training, no multi-stage, no
multi-view discriminator) and the same-/novel-view FID of reconstructions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unflat.config import replace_fields
from unflat.data.format import open_dataset
from unflat.data.loader import StepSampler, gather
from unflat.errors import ConfigError
from unflat.methods.base import TrainContext
from unflat.methods.progressive import Progressive, ProgressiveConfig, tiny

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def _method(data: Path, **kw) -> Progressive:
    torch.manual_seed(0)
    cfg = replace_fields(tiny(), {"data": data, "encoder.latent_noise": False, **kw})  # latent 0: deterministic forward
    return Progressive(cfg, open_dataset(data).info, TrainContext(CPU))


def _batch(data: Path, indices: list[int], views: int):
    return gather(open_dataset(data), np.asarray(indices), views).to(CPU)


def test_same_view_supervision_is_multiview_training_with_the_input_as_target(multiview_sphere_dataset: Path):
    """Same-view training on [view a] must compute exactly the losses multi-view training computes on the
    pair (view a, view a): target image, camera and ground-truth mask are the input's own."""
    same = _method(multiview_sphere_dataset, **{"schedule.supervision": "same-view"})
    multi = _method(multiview_sphere_dataset)
    assert same.views_per_sample == 1 and multi.views_per_sample == 2
    multi.net.load_state_dict(same.net.state_dict())
    a = [0, 4, 9]
    logs_same = same.train_step(_batch(multiview_sphere_dataset, a, 1), step=0)
    logs_multi = multi.train_step(_batch(multiview_sphere_dataset, [i for i in a for _ in range(2)], 2), step=0)
    for key in ("loss_novel_view", "loss_iou", "loss_laplacian", "loss_total"):
        assert torch.allclose(torch.as_tensor(logs_same[key]), torch.as_tensor(logs_multi[key]), rtol=1e-5, atol=1e-7), key
    # ... and differs from multi-view training on real pairs (the target is another view there)
    other = _method(multiview_sphere_dataset)
    other.net.load_state_dict(multi.net.state_dict())
    logs_pairs = other.train_step(_batch(multiview_sphere_dataset, [0, 1, 4, 5, 9, 10], 2), step=0)
    assert not torch.allclose(torch.as_tensor(logs_pairs["loss_iou"]), torch.as_tensor(logs_same["loss_iou"]))


def test_same_view_iou_loss_uses_the_input_views_ground_truth_mask(multiview_sphere_dataset: Path):
    method = _method(multiview_sphere_dataset, **{"schedule.supervision": "same-view"})
    batch = _batch(multiview_sphere_dataset, [2, 7], 1)
    with torch.no_grad():
        verts, texture = method.predict(batch.images, method._latent(2))
        silhouette = method.render(verts, texture, batch.cameras).mask
    soft_iou = (silhouette * batch.masks).sum((1, 2, 3)) / (silhouette + batch.masks - silhouette * batch.masks).sum((1, 2, 3))
    logs = method.train_step(batch, step=0)
    assert float(logs["loss_iou"]) == pytest.approx(float(1 - soft_iou.mean()), rel=1e-5)


def test_same_view_training_runs_on_single_view_data(sphere_dataset: Path, tmp_path: Path):
    """One view per sample: a single-view dataset trains (multi-view supervision cannot), through all stages."""
    from unflat.runs import train
    from unflat.data.loader import DatasetError
    from unflat.methods.registry import get_method

    cfg = replace_fields(tiny(), {"data": sphere_dataset, "out": tmp_path / "run", "schedule.supervision": "same-view",
                                  "sample_every": 0})
    result = train(get_method("progressive"), cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.step == 6 and [r["stage"] for r in rows] == [1, 1, 2, 2, 3, 3]
    assert all(np.isfinite(r["loss_total"]) for r in rows)
    with pytest.raises(DatasetError, match="2 views"):
        StepSampler(open_dataset(sphere_dataset), 2, 0, views_per_sample=2)


def test_supervision_is_validated_and_recorded_in_the_run_config(tmp_path: Path):
    with pytest.raises(ConfigError, match="--schedule.supervision"):
        replace_fields(tiny(), {"schedule.supervision": "both"}).validate()
    from unflat.config import config_from_yaml, config_to_yaml

    cfg = replace_fields(tiny(), {"schedule.supervision": "same-view"})
    assert config_from_yaml(ProgressiveConfig, config_to_yaml(cfg)).schedule.supervision == "same-view"


def test_no_multistage_schedule_starts_in_stage_three(multiview_sphere_dataset: Path):
    method = _method(multiview_sphere_dataset, **{"schedule.stage2_start": 0, "schedule.stage3_start": 0})
    assert [method.stage_at(s) for s in range(3)] == [3, 3, 3]
    logs = method.train_step(_batch(multiview_sphere_dataset, [0, 1, 4, 5], 2), step=0)
    assert {"loss_same_view", "loss_g_adv", "loss_d"} <= set(logs) and logs["stage"] == 3.0


def test_unconditional_discriminator_ignores_the_other_view(multiview_sphere_dataset: Path):
    """--discriminator.no-conditional: the scores do not depend on view 1's partial texture; with it, they do."""
    torch.manual_seed(1)
    tex, mask = torch.rand(2, 3, 8, 8) * 2 - 1, (torch.rand(2, 1, 8, 8) > 0.3).float()
    cond_a, cond_b = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    cond_mask = (torch.rand(2, 1, 8, 8) > 0.3).float()
    for conditional in (True, False):
        disc = _method(multiview_sphere_dataset, **{"discriminator.conditional": conditional}).disc
        with torch.no_grad():
            a = disc(tex * mask, mask, cond_a, cond_mask)
            b = disc(tex * mask, mask, cond_b, cond_mask)
        same = all(torch.allclose(x, y) for x, y in zip(a, b))
        assert same != conditional, conditional


def test_reconstruction_fid_compares_renders_and_targets_as_sets():
    """FID/KID of reconstructions: 0 for identical sets, equal to the Frechet distance of the backbone's
    features computed independently (numpy/scipy), and larger for a shifted set."""
    from scipy import linalg

    from unflat.metrics.evaluate import evaluate_reconstruction

    class MeanColour:  # a transparent 'backbone': per-channel means and stds as features
        name, weights_hash, kind = "mean-colour", "0" * 16, "test"

        def __call__(self, images):
            return torch.cat([images.mean((2, 3)), images.std((2, 3))], 1)

    g = torch.Generator().manual_seed(0)
    targets = torch.rand(24, 3, 12, 12, generator=g)
    preds = (targets * 0.7 + 0.2 * torch.rand(24, 3, 12, 12, generator=g)).clamp(0, 1)
    same = evaluate_reconstruction(targets, targets.clone(), extractor=MeanColour(), batch_size=10)
    assert same.fid == pytest.approx(0, abs=1e-6) and same.kid == pytest.approx(0, abs=1e-3)
    result = evaluate_reconstruction(preds, targets, extractor=MeanColour(), batch_size=10)
    f1, f2 = (MeanColour()(x).double().numpy() for x in (preds, targets))
    mu1, mu2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert result.fid == pytest.approx(expected, rel=1e-4)
    assert result.fid > 0.01 and result.kid > 0 and result.fid_backbone == "mean-colour"
    assert result.mse is not None and evaluate_reconstruction(preds, targets).fid is None  # no backbone, no FID


def test_evaluate_command_reports_same_and_novel_view_fid_on_the_backbone(multiview_sphere_dataset: Path, tmp_path: Path,
                                                                          capsys):
    from unflat import cli
    from unflat.metrics.backbones import DomainBackboneExtractor

    run, out = tmp_path / "run", tmp_path / "metrics.json"
    assert cli.main(["train", "progressive", "--preset", "tiny", "--data", str(multiview_sphere_dataset), "--out", str(run),
                     "--max-steps", "1", "--no-tensorboard", "--sample-every", "0"]) == 0
    capsys.readouterr()
    # asked for explicitly without a backbone: one line saying how to make one
    assert cli.main(["evaluate", str(run), "--metrics", "fid", "--num-shapes", "4", "--out", str(out)]) == 1
    assert "unflat train backbone" in capsys.readouterr().err
    assert cli.main(["train", "backbone", "--preset", "tiny", "--data", str(multiview_sphere_dataset), "--out",
                     str(tmp_path / "bb"), "--max-steps", "1", "--no-tensorboard"]) == 0
    assert cli.main(["evaluate", str(run), "--metrics", "fid", "kid", "ssim", "--num-shapes", "4", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    weights = DomainBackboneExtractor.load(multiview_sphere_dataset / "backbone.safetensors").weights_hash
    for view in ("same_view", "novel_view"):
        v = results[view]
        assert v["fid"] is not None and v["fid"] >= 0 and v["kid"] is not None and v["fid_weights_hash"] == weights
        assert v["ssim"] is not None and v["mse"] is None and v["silhouette_iou"] is None  # only what was asked for
    assert "FID (renders vs targets)" in out.with_name("report.md").read_text()
