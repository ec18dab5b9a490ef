"""Tests of 3DGP (method "3dgp") and its parts: depth estimator + cache, depth adaptor, camera generator,
distillation. Tiny random networks on CPU; references are analytic cases or brute-force computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from unflat.config import replace_fields
from unflat.cameras import Cameras
from unflat.data.format import open_dataset
from unflat.data.loader import iterate_batches
from unflat.methods.base import TrainContext
from conftest import assert_resume_matches_straight

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Camera generator
# ---------------------------------------------------------------------------------------------
def test_camera_generator_outputs_valid_cameras_within_bounds():
    from unflat.nets.camera_generator import FOV, CameraGenerator, CameraPrior, params_to_cameras

    torch.manual_seed(0)
    prior = CameraPrior(azimuth_range=(-90, 90), elevation_range=(-45, 45), radius=2.5, fov_range=(10, 45), look_at_radius=0.3)
    gen = CameraGenerator(prior, num_classes=3, z_dim=8, hidden=16, embed=4)
    # Push the outputs to the extremes: huge weights saturate the sigmoid squashing.
    with torch.no_grad():
        for p in gen.parameters():
            p.mul_(50)
    params, cams = gen.sample(256, torch.randint(0, 3, (256,)), torch.randn(256, 8))
    assert cams.is_valid().all()
    assert (cams.fov_deg > 10 - 1e-3).all() and (cams.fov_deg < 45 + 1e-3).all()
    assert torch.allclose(cams.fov_deg, params[:, FOV], atol=1e-3)
    az, el, radius = cams.to_orbit()
    assert (az.abs() <= 90 + 1e-3).all() and (el.abs() <= 45 + 1e-3).all()
    assert torch.allclose(radius, torch.full_like(radius, 2.5), atol=1e-4)  # radius is not learned by default
    # The camera looks at the look-at point: it projects to the image centre.
    target = (cams.cam2world[:, :3, 3] + 0)  # eye
    from unflat.cameras import orbit_to_eye
    look = orbit_to_eye(torch.rad2deg(params[:, 4]), torch.rad2deg(params[:, 5]), params[:, 6])
    uv, depth = cams.project(look[:, None])
    assert torch.allclose(uv[:, 0], torch.full_like(uv[:, 0], 0.5), atol=1e-4) and (depth > 0).all()
    assert not torch.equal(target, look)
    assert params_to_cameras(params).cam2world.shape == (256, 4, 4)


def test_camera_generator_switches_and_gradients():
    from unflat.nets.camera_generator import CameraGenerator, CameraPrior

    torch.manual_seed(0)
    prior = CameraPrior()
    frozen = CameraGenerator(prior, learn_angles=False, learn_fov=False, learn_look_at=False, hidden=8, embed=4)
    prior_params = prior.sample(32)
    assert torch.equal(frozen(prior_params), prior_params)
    gen = CameraGenerator(prior, num_classes=2, z_dim=4, hidden=8, embed=4)
    out = gen(prior_params, torch.randint(0, 2, (32,)), torch.randn(32, 4))
    out[:, [0, 1, 3]].sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.origin.parameters())


def test_emd_1d_matches_brute_force_assignment():
    from scipy.optimize import linear_sum_assignment

    from unflat.nets.camera_generator import emd_1d

    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(12, 3, generator=g), torch.rand(12, 3, generator=g) * 3
    ours = emd_1d(a, b)
    for k in range(3):
        cost = (a[:, k, None] - b[None, :, k]).square().numpy()
        rows, cols = linear_sum_assignment(cost)
        assert ours[k].item() == pytest.approx(cost[rows, cols].mean(), rel=1e-5)


def test_camera_regularisers_pull_towards_prior():
    from unflat.nets.camera_generator import CameraPrior, camera_emd_loss, mean_angle_loss

    prior = CameraPrior()
    samples = prior.sample(4096, generator=torch.Generator().manual_seed(0))
    collapsed = samples.clone()
    collapsed[:, :2] = 0.3  # every camera at one view
    assert camera_emd_loss(collapsed, samples) > 20 * camera_emd_loss(prior.sample(4096), samples)
    assert mean_angle_loss(samples, prior) < 0.05
    assert mean_angle_loss(collapsed, prior).item() == pytest.approx(math.sqrt(2) * 0.3, rel=1e-3)


# ---------------------------------------------------------------------------------------------
# Depth adaptor
# ---------------------------------------------------------------------------------------------
def test_depth_adaptor_shape_contract_and_schedule():
    from unflat.nets.depth_adaptor import DepthAdaptor

    torch.manual_seed(0)
    adaptor = DepthAdaptor(near=1.0, far=3.0, hidden=8, num_layers=3, kernel_size=5, start_p=0.1)
    depth = 1 + 2 * torch.rand(5, 1, 12, 10)
    assert adaptor(depth).shape == (5, 1, 12, 10)
    assert adaptor.all_outputs(depth).shape == (5, 4, 1, 12, 10)
    # Probabilities: uniform at the start, first one -> start_p at the end, always increasing and summing to 1.
    assert torch.allclose(adaptor.selection_probs(), torch.full((4,), 0.25))
    adaptor.set_progress(1.0)
    probs = adaptor.selection_probs()
    assert probs[0].item() == pytest.approx(0.1) and probs.sum().item() == pytest.approx(1.0)
    assert (probs.diff() > 0).all()
    # Evaluation uses the deepest map; pick=0 is the normalised depth: near' -> -1, far -> +1.
    adaptor.eval()
    assert torch.equal(adaptor(depth), adaptor.all_outputs(depth)[:, -1])
    near = adaptor.near_plane().item()
    assert 1.0 < near < 1.0 + 0.25 * 2
    ends = torch.tensor([near, 3.0]).view(2, 1, 1, 1)
    assert torch.allclose(adaptor(ends, pick=torch.zeros(2, dtype=torch.long)).flatten(), torch.tensor([-1.0, 1.0]), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Depth estimator, ground truth, cache
# ---------------------------------------------------------------------------------------------
def test_scale_shift_alignment_is_exact_for_affine_maps():
    from unflat.nets.depth_estimator import align_scale_shift, relative_depth_error

    target = torch.rand(3, 1, 8, 8)
    pred = (target - 0.7) / 3.0
    assert torch.allclose(align_scale_shift(pred, target), target, atol=1e-5)
    assert relative_depth_error(pred, target).item() < 1e-5


def test_ground_truth_relative_depth_of_spheres(sphere_dataset):
    from unflat.nets.depth_estimator import ground_truth_relative

    batch = next(iterate_batches(sphere_dataset, 0, 1, 8, 0, CPU))
    rel = ground_truth_relative(batch.depth, batch.cameras, batch.masks)
    hit = batch.masks > 0.5
    assert torch.allclose(rel[~hit], torch.ones(()))  # background = far
    assert torch.allclose(rel.flatten(1).amin(1), -torch.ones(8))
    # Ordering is preserved: nearer surface points stay nearer.
    d, r = batch.depth[hit], rel[hit]
    i, j = torch.randint(0, len(d), (2, 200))
    same_image = torch.zeros_like(hit, dtype=torch.long) + torch.arange(8).view(8, 1, 1, 1)
    img = same_image[hit]
    ok = img[i] == img[j]
    assert ((d[i] < d[j]) == (r[i] < r[j]))[ok & (d[i] != d[j])].all()


def test_self_trained_depth_estimator_reduces_depth_error(tmp_path):
    from conftest import write_sphere_dataset
    from unflat.methods.depth import DEPTH_SPEC, DepthEstimatorMethod
    from unflat.nets.depth_estimator import ground_truth_relative, relative_depth_error

    root = write_sphere_dataset(tmp_path / "train", num_shapes=32, resolution=16, seed=3)
    held_out = write_sphere_dataset(tmp_path / "test", num_shapes=16, resolution=16, seed=9)
    cfg = DEPTH_SPEC.config("tiny")
    cfg.data = root
    torch.manual_seed(0)
    method = DepthEstimatorMethod(cfg, open_dataset(root).info, TrainContext(CPU))
    test_batch = next(iterate_batches(held_out, 0, 1, 16, 0, CPU))
    target = ground_truth_relative(test_batch.depth, test_batch.cameras, test_batch.masks)
    estimator = method.estimator()
    before = relative_depth_error(estimator(test_batch.images), target).item()
    for step, batch in enumerate(iterate_batches(root, 0, cfg.max_steps, cfg.batch_size, cfg.seed, CPU)):
        method.set_learning_rates(step)
        method.train_step(batch, step)
    estimator = method.estimator()
    after = relative_depth_error(estimator(test_batch.images), target).item()
    assert after < 0.5 * before, (before, after)
    samples = method.sample(4, seed=0)
    assert samples.images.shape == (4, 3, 16, 48) and samples.depth.shape == (4, 1, 16, 16)


def test_depth_cache_computes_once_and_keys_on_estimator(sphere_dataset, tmp_path):
    from unflat.data.depth_cache import estimated_depth, ground_truth_depth
    from unflat.nets.depth_estimator import NetworkDepthEstimator, TinyDepthNet, ground_truth_relative

    torch.manual_seed(0)
    calls = []

    class Counting(NetworkDepthEstimator):
        def __call__(self, images):
            calls.append(len(images))
            return super().__call__(images)

    est = Counting(TinyDepthNet(4, 2), "tiny")
    first = estimated_depth(sphere_dataset, est, batch_size=3, cache_dir=tmp_path)
    again = estimated_depth(sphere_dataset, est, batch_size=3, cache_dir=tmp_path)
    assert calls == [3, 3, 2] and first.shape == (8, 16, 16) and first.dtype == np.float16
    assert np.array_equal(first, again)
    dataset = open_dataset(sphere_dataset)
    images = torch.from_numpy(np.array(dataset.images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert np.allclose(first, NetworkDepthEstimator.__call__(est, images)[:, 0].numpy(), atol=2e-3)
    other = Counting(TinyDepthNet(4, 2), "tiny")  # different weights -> different cache entry
    estimated_depth(sphere_dataset, other, cache_dir=tmp_path)
    assert len(calls) == 4 and len(list((tmp_path / "depth").glob("*.npy"))) == 2
    gt = ground_truth_depth(sphere_dataset, cache_dir=tmp_path)
    ref = ground_truth_relative(torch.from_numpy(np.array(dataset.depth, np.float32))[:, None], dataset.cameras,
                                torch.from_numpy(np.array(dataset.masks))[:, None].float() / 255)
    assert np.allclose(gt, ref[:, 0].numpy(), atol=2e-3)


def test_batch_rows_match_the_loader(sphere_dataset):
    from unflat.data.depth_cache import BatchRows

    rows = BatchRows(sphere_dataset, batch_size=3, seed=5)
    dataset = open_dataset(sphere_dataset)
    for step, batch in enumerate(iterate_batches(sphere_dataset, 0, 6, 3, 5, CPU), start=0):
        idx = rows.rows(batch, step)
        assert idx is not None
        expected = torch.from_numpy(np.array(dataset.images[idx])).permute(0, 3, 1, 2).float() / 127.5 - 1
        assert torch.equal(expected, batch.images)
    assert rows.rows(batch, 0) is None or step == 0  # a batch of another step is detected


# ---------------------------------------------------------------------------------------------
# Distillation
# ---------------------------------------------------------------------------------------------
def test_distillation_loss_values():
    from unflat.losses.distillation import distillation_loss, patch_sample_weights

    pred = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, 4.0], [0.0, 1.0]])
    assert distillation_loss(pred, target).item() == pytest.approx((5 + 1) / 2)
    w = patch_sample_weights(torch.tensor([1.0, 0.25]))
    assert w.mean().item() == pytest.approx(1.0)
    assert distillation_loss(pred, target, w).item() == pytest.approx((5 * 1.6 + 1 * 0.4) / 2)
    same = torch.randn(4, 6)
    assert distillation_loss(same, same, kind="kl").abs().item() < 1e-6


# ---------------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_tdgp(dataset: Path, overrides: dict[str, object] | None = None):
    """The tiny 3dgp on ``dataset`` with ``overrides`` ({"depth.source": "run", ...})."""
    from unflat.config import replace_fields
    from unflat.methods.registry import get_method

    spec = get_method("3dgp")
    torch.manual_seed(0)
    cfg = replace_fields(spec.config("tiny"), {"data": dataset, "device": "cpu", **(overrides or {})})
    return spec.method_cls(cfg, open_dataset(dataset).info, TrainContext(CPU))


def run_steps(method, dataset: Path, steps: int = 2) -> list[dict]:
    logs = []
    for step, batch in enumerate(iterate_batches(dataset, 0, steps, method.cfg.batch_size, method.cfg.seed, CPU)):
        torch.manual_seed(step)
        method.set_learning_rates(step)
        logs.append(method.train_step(batch, step))
    return logs


def test_depth_method_is_registered():
    from unflat.methods.registry import get_method

    assert get_method("depth").config("tiny").max_steps > 0
    assert get_method("3dgp").config("paper").generator.plane_resolution == 512


SWITCHES = ["depth.enabled", "depth.adaptor", "camera_generator.enabled", "distillation.enabled", "patches.enabled"]


@pytest.mark.parametrize("off", [*SWITCHES, "all"])
def test_each_component_switches_off(sphere_dataset, cache_dir, off):
    method = make_tdgp(sphere_dataset, {n: False for n in SWITCHES if off in (n, "all")})
    logs = run_steps(method, sphere_dataset)
    cfg = method.cfg
    assert method.D.in_channels == 3 + cfg.depth.enabled + 2 * cfg.patches.enabled
    assert ("loss/distill" in logs[0]) == cfg.distillation.enabled
    assert ("camera/mean_angle_loss" in logs[0]) == cfg.camera_generator.enabled
    assert (method.G.depth_adaptor is not None) == (cfg.depth.enabled and cfg.depth.adaptor)
    assert ("patch/mean_scale" in logs[0]) and (logs[-1]["patch/mean_scale"] < 1) == cfg.patches.enabled
    assert all(math.isfinite(float(v)) for log in logs for v in log.values())
    if not cfg.camera_generator.enabled:  # prior cameras: azimuth spread over the prior's range
        az = torch.rad2deg(method._fake_params[:, 0])
        assert az.min() >= cfg.cameras.azimuth_min and az.max() <= cfg.cameras.azimuth_max


def test_depth_from_a_trained_depth_run(sphere_dataset, cache_dir, tmp_path):
    from dataclasses import replace

    from unflat.runs import train
    from unflat.methods.registry import get_method

    spec = get_method("depth")
    train(spec, replace(spec.config("tiny"), data=sphere_dataset, out=tmp_path / "depth", device="cpu", max_steps=3))
    method = make_tdgp(sphere_dataset, {"depth.source": "run", "depth.run": tmp_path / "depth"})
    logs = run_steps(method, sphere_dataset, 1)
    assert math.isfinite(float(logs[0]["loss/d"]))
    cached = list((cache_dir / "depth").glob("*unflat-tinydepth-*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (8, 16, 16)
    assert method._resolved_depth_source == "run"


def test_auto_teacher_falls_back_to_a_domain_backbone_trained_on_the_data(sphere_dataset, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("UNFLAT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")  # no ResNet-50 anywhere
    from unflat import pretrained

    monkeypatch.setattr(pretrained, "efficientnet_available", lambda: False)  # and no EfficientNet-Lite0
    method = make_tdgp(sphere_dataset, {"distillation.teacher": "auto", "distillation.backbone_steps": 2})
    assert method.teacher.identity.startswith("unflat-domain") and method.cfg.distillation.feature_dim == 256
    assert len(list((cache_dir / "backbones").glob("*.safetensors"))) == 1
    logs = run_steps(method, sphere_dataset, 1)
    assert math.isfinite(float(logs[0]["loss/distill"]))


def test_auto_teacher_is_efficientnet_when_installed_and_no_resnet50(sphere_dataset, cache_dir, tmp_path, monkeypatch):
    from unflat import pretrained

    if not pretrained.efficientnet_available():
        pytest.skip("the efficientnet extra is not installed")
    monkeypatch.setenv("UNFLAT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    method = make_tdgp(sphere_dataset, {"distillation.teacher": "auto"})
    assert method.teacher.identity.startswith("efficientnet-lite0") and method.cfg.distillation.feature_dim == 1280
    assert not list((cache_dir / "backbones").glob("*.safetensors"))  # nothing trained on the data
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    from unflat.metrics.backbones import EfficientNetLite0Extractor

    # the teacher's features are the metric extractor's (same network, same scaling within 1/255)
    torch.testing.assert_close(method.teacher(images), EfficientNetLite0Extractor()((images + 1) / 2), atol=2e-2, rtol=2e-2)
    logs = run_steps(method, sphere_dataset, 1)
    assert math.isfinite(float(logs[0]["loss/distill"]))


def test_patch_cameras_render_exactly_the_crop_of_the_full_frame(sphere_dataset, cache_dir):
    from unflat.methods.tdgp import extract_patches, patch_cameras

    method = make_tdgp(sphere_dataset, {"patches.enabled": True})
    G = method.G_ema
    torch.manual_seed(1)
    z = torch.randn(2, method.cfg.generator.z_dim)
    ws = G.map(z, G.class_onehot(torch.tensor([0, 1]), 2, CPU))
    planes = G.planes(ws, "const")
    cams = Cameras.from_orbit(torch.tensor([10.0, -30.0]), torch.tensor([5.0, 20.0]), 2.0, 40.0)
    full = G.render(planes, ws, cams, 16, perturb=False, noise_mode="const")
    scales, offsets = torch.tensor([0.5, 0.5]), torch.tensor([[0.25, 0.25], [0.5, 0.0]])
    patch = G.render(planes, ws, patch_cameras(cams, scales, offsets), 8, perturb=False, noise_mode="const")
    crops = torch.stack([full.image[0, :, 4:12, 4:12], full.image[1, :, 0:8, 8:16]])
    torch.testing.assert_close(patch.image, crops, atol=1e-5, rtol=0)
    torch.testing.assert_close(extract_patches(full.image, scales, offsets, 8), crops, atol=1e-5, rtol=0)


def test_method_cameras_are_valid_and_within_the_prior(sphere_dataset, cache_dir):
    method = make_tdgp(sphere_dataset)
    run_steps(method, sphere_dataset, 1)
    params, cams = method.camera_samples(128, seed=0, class_ids=torch.tensor(1))
    cfg = method.cfg
    assert cams.is_valid().all()
    assert (cams.fov_deg >= cfg.cameras.fov_min - 1e-3).all() and (cams.fov_deg <= cfg.cameras.fov_max + 1e-3).all()
    az, el, _ = cams.to_orbit()
    torch.testing.assert_close(az, torch.rad2deg(params[:, 0]), atol=1e-3, rtol=0)  # the parameters it returns
    torch.testing.assert_close(cams.fov_deg, params[:, 3], atol=1e-3, rtol=0)
    assert (az >= cfg.cameras.azimuth_min - 1e-3).all() and (az <= cfg.cameras.azimuth_max + 1e-3).all()
    assert (el >= cfg.cameras.elevation_min - 1e-3).all() and (el <= cfg.cameras.elevation_max + 1e-3).all()
    hist = method.histograms()
    assert set(hist) >= {"camera/azimuth", "camera/fov"} and len(hist["camera/fov"]) == cfg.batch_size


def test_loss_explosion_detector():
    from unflat.methods.base import NonFiniteError
    from unflat.methods.tdgp import LossExplosion, LossExplosionDetector

    det = LossExplosionDetector(factor=10, warmup_steps=3, momentum=0.5)
    for value in [1.0, 1.2, 0.8]:
        det.check("G", torch.tensor(value))
    det.check("G", torch.tensor(5.0))  # large, but under 10x the running mean
    with pytest.raises(LossExplosion) as info:
        det.check("G", torch.tensor(1e3))
    assert isinstance(info.value, NonFiniteError) and "running mean" in str(info.value)
    det.check("D", torch.tensor(1e3))  # each loss has its own mean and warm-up
    clone = LossExplosionDetector(10, 3, 0.5)
    clone.load(det.state())
    assert clone.means == det.means and clone.counts == det.counts


def test_train_resume_sample_export_through_the_engine(sphere_dataset, cache_dir, tmp_path):
    from dataclasses import replace

    import trimesh

    from unflat.runs import load_run
    from unflat.methods.registry import get_method

    spec = get_method("3dgp")

    assert_resume_matches_straight(spec, replace(spec.config("tiny"), data=sphere_dataset, device="cpu"), tmp_path)
    assert len(list((cache_dir / "depth").glob("*.npy"))) == 1  # ground-truth depth, computed once
    assert len(list((cache_dir / "features").glob("*.npy"))) == 1

    method = load_run(tmp_path / "split", "cpu").method
    s1 = method.sample(3, seed=5, class_ids=torch.tensor(1))
    s2 = method.sample(3, seed=5, class_ids=torch.tensor(1))
    assert torch.equal(s1.images, s2.images) and s1.images.shape == (3, 3, 16, 16)  # full frames, not patches
    assert s1.cameras.is_valid().all()
    meshes = method.export(tmp_path / "export", 1, seed=0, formats=("glb",))
    assert len(trimesh.load(meshes[0], force="mesh").faces) > 0

    # PTI renders whole frames at the output resolution (training renders 8x8 patches of the 16x16 frame)
    import numpy as np
    from PIL import Image

    from unflat.methods import pti

    image = tmp_path / "photo.png"
    Image.fromarray(((s1.images[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)).save(image)
    seen = []
    real_render = pti._render

    def recording_render(m, generator, ws, cameras):
        out = real_render(m, generator, ws, cameras)
        seen.append(tuple(out.shape))
        return out

    pti._render = recording_render
    try:
        method.invert([image], tmp_path / "inv", steps_w=1, steps_g=1, progress=False, camera_candidates=2)
    finally:
        pti._render = real_render
    assert seen and all(shape[-2:] == (16, 16) for shape in seen), seen


def test_loss_explosion_stops_the_update_and_reaches_the_engine(sphere_dataset, cache_dir, tmp_path):
    from dataclasses import replace

    from unflat.engine.trainer import TrainingDiverged
    from unflat.methods.registry import get_method
    from unflat.methods.tdgp import LossExplosion
    from unflat.runs import train

    # A hair-trigger detector: any loss above its running mean "explodes".
    method = make_tdgp(sphere_dataset, {"explosion.factor": 1.0001, "explosion.warmup_steps": 1})
    batches = list(iterate_batches(sphere_dataset, 0, 3, method.cfg.batch_size, method.cfg.seed, CPU))
    with pytest.raises(LossExplosion) as info:
        for step, batch in enumerate(batches):
            torch.manual_seed(step)
            before = {name: {k: v.detach().clone() for k, v in net.named_parameters()} for name, net in method.networks().items()}
            method.train_step(batch, step)
    exploded = str(info.value).split(":")[0]  # the optimiser whose loss exploded: its network was not updated
    after = dict(method.networks()[exploded].named_parameters())
    assert all(torch.equal(before[exploded][k], after[k]) for k in after)
    spec = get_method("3dgp")
    cfg = replace_fields(spec.config("tiny"), {"data": sphere_dataset, "out": tmp_path / "run", "device": "cpu", "max_steps": 4, "explosion.factor": 1.0001, "explosion.warmup_steps": 1, "nan_policy": "stop"})
    with pytest.raises(TrainingDiverged, match="exceeds"):
        train(spec, cfg)
