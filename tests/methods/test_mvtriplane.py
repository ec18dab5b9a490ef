"""mvtriplane + the shared tri-plane core: networks, cameras, multi-view discrimination and its trigger,
training through the engine with exact resume, generation by class, mesh export and PTI inversion."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from unflat.config import replace_fields
from unflat.data.format import open_dataset
from unflat.data.loader import iterate_batches
from unflat.methods.base import TrainContext
from unflat.methods.mvtriplane import MVTriplane, sample_diversity, tiny
from unflat.methods.registry import get_method
from unflat.methods.triplane_gan import sample_view_cameras
from unflat.nets.stylegan2 import Discriminator, SynthesisNetwork, modulated_conv2d
from conftest import assert_resume_matches_straight

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks gain nothing from a second thread, and oneDNN's threads spin badly on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_method(dataset: Path, overrides: dict[str, object] | None = None) -> MVTriplane:
    """The tiny mvtriplane on ``dataset`` with ``overrides`` ({"multiview.views": 2, ...})."""
    torch.manual_seed(0)
    cfg = replace_fields(tiny(), {"data": dataset, "device": "cpu", **(overrides or {})})
    return MVTriplane(cfg, open_dataset(dataset).info, TrainContext(device=CPU))


def batches(dataset: Path, n: int, batch_size: int = 4):
    return list(iterate_batches(dataset, 0, n, batch_size, 0, CPU))


# ---- building blocks ----------------------------------------------------------------------------
def test_modulated_conv_equals_grouped_convolution_reference():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 5, 6, 6), torch.randn(4, 5, 3, 3), torch.randn(3, 5)
    out = modulated_conv2d(x, weight, styles, demodulate=True, padding=1)
    # StyleGAN2's formulation: per-sample weights w * s, normalised per output channel, grouped conv.
    w = weight[None] * styles[:, None, :, None, None]
    w = w / w.square().sum(dim=(2, 3, 4), keepdim=True).add(1e-8).sqrt()
    ref = torch.nn.functional.conv2d(x.reshape(1, 15, 6, 6), w.reshape(12, 5, 3, 3), padding=1, groups=3).reshape(3, 4, 6, 6)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_triplane_sampling_reproduces_linear_fields_on_each_plane():
    from unflat.geometry.triplane import sample_triplane

    r = 32
    centres = (torch.arange(r) * 2 + 1) / r - 1  # texel centres in grid coordinates (align_corners=False)
    rows, cols = torch.meshgrid(centres, centres, indexing="ij")  # rows follow the 2nd axis, cols the 1st
    planes = torch.stack([2 * cols + 3 * rows, 5 * rows, 7 * cols])[None, :, None]  # (x,y), (x,z), (y,z)
    box = 4.0
    points = (torch.rand(1, 50, 3) * 1.8 - 0.9) * (1 - 1 / r) * box / 2
    feats = sample_triplane(planes, points, box, "sum")
    x, y, z = (points[0] * 2 / box).unbind(-1)
    torch.testing.assert_close(feats[0, :, 0], 2 * x + 3 * y + 5 * z + 7 * y, atol=1e-4, rtol=1e-4)
    outside = sample_triplane(planes, torch.full((1, 1, 3), box), box, "mean")
    assert outside.abs().max() == 0


def test_extra_blocks_roughly_double_the_synthesis_parameters():
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    base = SynthesisNetwork(32, 32, 24, channel_base=1024, channel_max=64, extra_blocks=False)
    deep = SynthesisNetwork(32, 32, 24, channel_base=1024, channel_max=64, extra_blocks=True)
    assert 1.7 < count(deep) / count(base) < 2.3  # the paper: "the number of parameters is doubled"
    ws = torch.randn(2, deep.num_ws, 32)
    assert deep(ws).shape == base(ws[:, : base.num_ws]).shape == (2, 24, 32, 32)


def test_discriminator_input_channels_and_feature_head_are_configurable():
    d = Discriminator(16, in_channels=4, num_classes=3, channel_base=128, channel_max=16, mapping_layers=1, feature_dim=5)
    logits, feats = d(torch.randn(4, 4, 16, 16), torch.eye(3)[[0, 1, 2, 0]], return_features=True)
    assert logits.shape == (4, 1) and feats.shape == (4, 5)


def test_whole_sphere_views_are_spread_and_each_view_is_uniform():
    g = torch.Generator().manual_seed(0)
    cams = sample_view_cameras(4000, 3, radius=2.0, fov_deg=30, perturb_deg=0.0, generator=g)
    eye = cams.cam2world[:, :3, 3].reshape(4000, 3, 3) / 2.0
    cos = (eye[:, 0] * eye[:, 1]).sum(-1)
    torch.testing.assert_close(cos, torch.full_like(cos, -0.5), atol=1e-4, rtol=0)  # 120 degrees apart
    first = eye[:, 0]
    # Archimedes: for directions uniform on the sphere each coordinate is uniform on [-1, 1].
    for axis in range(3):
        hist = torch.histc(first[:, axis], bins=4, min=-1, max=1) / 4000
        assert (hist - 0.25).abs().max() < 0.03
    narrow = sample_view_cameras(500, 2, 2.0, 30, elevation_range=(0, 30), azimuth_range=(-90, 90), generator=g)
    _, el, radius = narrow.to_orbit()
    assert el.min() >= -1e-3 and el.max() <= 30 + 1e-3
    torch.testing.assert_close(radius, torch.full_like(radius, 2.0))


def test_sample_diversity_is_zero_for_copies_and_positive_for_different_images():
    same = torch.rand(1, 3, 16, 16).expand(6, -1, -1, -1) * 2 - 1
    assert sample_diversity(same) == pytest.approx((0.0, 0.0), abs=1e-5)
    different = torch.rand(6, 3, 16, 16) * 2 - 1
    assert sample_diversity(different)[0] > 0.1


# ---- training -----------------------------------------------------------------------------------
@pytest.mark.parametrize("start", [0, -1])
def test_two_steps_with_multiview_on_and_off(sphere_dataset: Path, start: int):
    method = make_method(sphere_dataset, {"multiview.start_step": start})
    before = [p.detach().clone() for p in method.G.parameters()]
    for step, batch in enumerate(batches(sphere_dataset, 2)):
        logs = method.train_step(batch, step)
        assert all(math.isfinite(float(v)) for v in logs.values())
        assert logs["views_per_latent"] == (2.0 if start == 0 else 1.0)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, method.G.parameters()))
    assert changed > len(before) // 2


def test_collapse_signal_switches_multiview_on_and_is_checkpointed(sphere_dataset: Path, caplog):
    method = make_method(sphere_dataset, {"multiview.start_step": -1, "multiview.auto": True, "multiview.diversity_every": 1,
                                          "multiview.diversity_warmup": 0, "multiview.diversity_drop": 0.25})
    signal = iter([(1.0, 0.3), (0.9, 0.3), (0.5, 0.1)])  # a diversity collapse at the third probe
    method.probe_diversity = lambda: next(signal)
    data = batches(sphere_dataset, 3)
    with caplog.at_level("WARNING", logger="unflat.run"):
        fired = [method.train_step(b, i)["multiview/triggered"] for i, b in enumerate(data)]
    assert fired == [0.0, 0.0, 1.0]
    assert method.views_per_latent(3) == 2 and method.views_per_latent(2) == 1
    assert "multi-view discrimination" in caplog.text
    state = method.extra_state()
    fresh = make_method(sphere_dataset, {"multiview.start_step": -1, "multiview.auto": True, "multiview.diversity_every": 1})
    fresh.load_extra_state(state)
    assert fresh.views_per_latent(3) == 2 and fresh.diversity_peak == 1.0


def test_train_resume_generate_invert_through_the_engine(sphere_dataset: Path, tmp_path: Path):
    from unflat.runs import load_run

    spec = get_method("mvtriplane")

    assert_resume_matches_straight(spec, replace(spec.config("tiny"), data=sphere_dataset, device="cpu"), tmp_path)

    method = load_run(tmp_path / "split", "cpu").method
    # generate by class: grids, depth, meshes, videos; samples deterministic in the seed and of that class
    paths = method.generate(tmp_path / "gen", 2, seed=3, class_id=1, video_frames=3)
    names = {p.name for p in paths}
    assert {"samples_class1_class1.png", "depth_class1_class1.npy", "interp_latent.gif", "interp_class.gif",
            "turntable.gif"} <= names
    s1, s2 = method.sample(3, seed=5, class_ids=torch.tensor(1)), method.sample(3, seed=5, class_ids=torch.tensor(1))
    assert torch.equal(s1.images, s2.images) and s1.class_ids.tolist() == [1, 1, 1]
    assert s1.images.shape == (3, 3, 16, 16) and s1.depth.shape == (3, 1, 16, 16)

    meshes = method.export(tmp_path / "export", 1, seed=0, formats=("glb",))
    assert len(meshes) == 1 and meshes[0].name.startswith("mesh_0000_class") and meshes[0].suffix == ".glb"
    assert (tmp_path / "export" / "export.json").is_file()
    mesh = trimesh.load(meshes[0], force="mesh")
    assert len(mesh.faces) > 0 and np.abs(mesh.vertices).max() <= method.cfg.generator.box_size / 2 + 1e-5
    assert mesh.visual.kind == "vertex" and len(mesh.visual.vertex_colors) == len(mesh.vertices)


def test_pti_loss_decreases_and_writes_outputs(sphere_dataset: Path, tmp_path: Path):
    from PIL import Image

    from unflat.methods.pti import PTISettings, discriminator_feature_fn, invert_image

    method = make_method(sphere_dataset)
    # A reachable target: another latent of the generator at a known camera.
    target = method.sample(1, seed=11, class_ids=torch.tensor(0)).images
    torch.manual_seed(0)
    settings = PTISettings(steps_w=12, steps_g=6, progress=False, camera_candidates=4)
    result = invert_image(method, target, settings, discriminator_feature_fn(method.D))
    assert result.losses_w[-1] < 0.8 * result.losses_w[0]
    assert min(result.losses_g[-3:]) < result.losses_g[0]
    assert result.class_source == "nearest class mean" and result.class_id in (0, 1)

    image = tmp_path / "photo.png"
    Image.fromarray(((target[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)).save(image)
    paths = method.invert([image], tmp_path / "inv", steps_w=2, steps_g=2, progress=False, camera_candidates=2)
    names = {p.name for p in paths}
    assert {"reconstruction.png", "novel_views.png", "depth.png", "generator.safetensors", "inversion.json"} <= names


def test_pti_uses_the_data_folders_domain_backbone_as_features_and_classifier(sphere_dataset: Path, tmp_path: Path):
    from unflat.methods.pti import choose_feature_fn
    from unflat.nets.domain_backbone import DomainBackbone, DomainBackboneConfig, save_domain_backbone

    path = save_domain_backbone(DomainBackbone(DomainBackboneConfig(resolution=16, widths=(4, 8), num_classes=2)),
                                tmp_path / "backbone.safetensors")
    method = make_method(sphere_dataset)
    feature_fn, name, classifier = choose_feature_fn(method, vgg_weights=tmp_path / "missing-vgg16.pth", backbone=path)
    assert name.startswith("domain backbone") and classifier is not None
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    assert classifier(images).shape == (2, 2) and len(feature_fn(images)) == 2
