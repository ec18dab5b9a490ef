"""IG-GAN: camera-frame resampling, OpenGL voxel pipeline, DOM, training with OpenGL in the loop,
resume, generate/export, renderer pre-training and reuse."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from unflat.cameras import Cameras
from unflat.config import replace_fields
from unflat.data.format import open_dataset
from unflat.data.loader import iterate_batches
from unflat.errors import ConfigError
from unflat.render.gl_backends import pyrender_installed
from unflat.losses.dom import dom_loss
from unflat.methods.base import TrainContext
from unflat.methods.iggan import RENDERER_SPEC, SPEC, IGGAN, IGGANRenderer, random_shapes, sample_views
from unflat.nets.dcgan import DCGANDiscriminator
from unflat.nets.rendernet import affine_grid_3d, camera_frame_volume
from unflat.nets.voxel_generator import VoxelGenerator
from unflat.render.voxel_pipeline import VoxelRenderPipeline, binarise, shared_renderer, voxels_to_meshes
from conftest import assert_resume_matches_straight

CPU = TrainContext(torch.device("cpu"))


def _box_voxels(resolution: int, half: float) -> torch.Tensor:
    axis = torch.linspace(-1, 1, resolution)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    inside = (x.abs() <= half) & (y.abs() <= half * 0.6) & (z.abs() <= half * 0.8)
    return inside.float()[None, None]


# ---- building blocks ---------------------------------------------------------------------------
@pytest.mark.parametrize("perspective", [False, True])
def test_camera_frame_volume_puts_a_point_where_the_camera_sees_it(perspective: bool) -> None:
    res, g = 32, 64
    point = torch.tensor([[0.35, 0.2, -0.3]])
    axis = torch.linspace(-1, 1, res)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)
    blob = torch.exp(-((grid - point[0]) ** 2).sum(-1) / (2 * 0.06**2))[None, None]
    cams = Cameras.from_orbit(torch.tensor([35.0]), torch.tensor([25.0]), 2.5, 40.0)
    volume = camera_frame_volume(blob, cams, 1.0, g, perspective=perspective)[0, 0]  # (depth, row, col)
    d, r, c = np.unravel_index(int(volume.argmax()), volume.shape)
    uv, z = cams.project(point[None])
    d0 = 2.5
    depth_index = (float(z) - d0) / math.sqrt(3.0) / 2 * (g - 1) + (g - 1) / 2
    if perspective:  # every (row, col) line is a pixel's ray: columns/rows follow the projection
        col, row = float(uv[0, 0, 0]) * (g - 1), float(uv[0, 0, 1]) * (g - 1)
    else:  # the paper's rigid transform: orthographic columns scaled to the image at the target depth
        cam = (point @ cams.world2cam()[0, :3, :3].T + cams.world2cam()[0, :3, 3])[0]
        half_w = d0 * 0.5 / float(cams.intrinsics[0, 0])
        col = (float(cam[0]) / half_w + 1) / 2 * (g - 1)
        row = (float(cam[1]) / half_w + 1) / 2 * (g - 1)
    assert abs(c - col) <= 1.0 and abs(r - row) <= 1.0 and abs(d - depth_index) <= 1.0, (d, r, c, depth_index, row, col)


def test_broadcast_affine_grid_equals_torch_affine_grid() -> None:
    theta = torch.randn(3, 3, 4)
    expected = torch.nn.functional.affine_grid(theta, [3, 1, 9, 9, 9], align_corners=True)
    assert torch.allclose(affine_grid_3d(theta, 9), expected, atol=1e-5)


def test_binarise_uses_one_threshold_per_sample() -> None:
    voxels = torch.tensor([0.1, 0.4, 0.6, 0.9]).view(1, 1, 1, 1, 4).repeat(2, 1, 1, 1, 1)
    out = binarise(voxels, torch.tensor([0.5, 0.05]))
    assert out[0].flatten().tolist() == [0, 0, 1, 1] and out[1].flatten().tolist() == [1, 1, 1, 1]


def test_voxel_pipeline_matches_rendering_the_same_box_mesh() -> None:
    res, half = 32, 0.5
    voxels = _box_voxels(res, half)
    cams = sample_views(3, 2.5, 40.0, (-180, 180), (-30, 60), generator=torch.Generator().manual_seed(3))
    pipeline = VoxelRenderPipeline(32)
    out = pipeline.render(voxels.expand(3, -1, -1, -1, -1), cams, torch.full((3,), 0.5))
    reference = shared_renderer(32, shading="flat").render(
        trimesh.creation.box(extents=(2 * half, 1.2 * half, 1.6 * half)), cams)
    inter = (out.mask * reference.mask).sum((1, 2, 3))
    union = ((out.mask + reference.mask) > 0).float().sum((1, 2, 3))
    assert (inter / union).min() > 0.85  # marching cubes of the grid vs the exact box
    assert out.rgb.shape == (3, 3, 32, 32) and out.mask.mean() > 0.05
    # thresholds above every value give an empty grid -> pure background
    empty = pipeline.images(voxels.expand(2, -1, -1, -1, -1) * 0.4, cams[:2], 0.5)
    assert torch.allclose(empty, torch.ones_like(empty))


def test_batched_marching_cubes_equals_one_grid_at_a_time() -> None:
    torch.manual_seed(2)
    grids = random_shapes(3, 12, "cubes")
    grids[2] = torch.rand(1, 12, 12, 12)  # a continuous grid
    together = voxels_to_meshes(grids)
    for grid, mesh in zip(grids, together):
        alone = voxels_to_meshes(grid[None])[0]
        assert np.array_equal(mesh.vertices, alone.vertices) and np.array_equal(mesh.faces, alone.faces)
        assert len(mesh.faces) > 0 and mesh.is_watertight


@pytest.mark.skipif(not pyrender_installed(), reason="the reference renderer is the optional extra unflat[pyrender]")
@pytest.mark.parametrize("backend", ["moderngl", "pyrender"])
def test_voxel_pipeline_backends_draw_the_same_images(backend: str) -> None:
    from unflat.render.moderngl_backend import moderngl_available

    if backend == "moderngl" and moderngl_available() is not None:
        pytest.skip(f"no headless moderngl here: {moderngl_available()}")
    torch.manual_seed(4)
    voxels = random_shapes(3, 16, "mixed")
    cams = sample_views(3, 2.5, 40.0, (-180, 180), (-30, 60), generator=torch.Generator().manual_seed(5))
    out = VoxelRenderPipeline(24, supersample=2, backend=backend).render(voxels, cams, 0.5)
    reference = VoxelRenderPipeline(24, supersample=2, backend="pyrender").render(voxels, cams, 0.5)
    assert (out.rgb - reference.rgb).abs().max() < 2 / 255
    assert torch.equal(out.mask, reference.mask)


def test_generator_and_discriminator_shapes() -> None:
    g = VoxelGenerator(z_dim=8, resolution=16, channels=4, max_channels=8)
    voxels = g(torch.randn(3, 8)).detach()
    assert voxels.shape == (3, 1, 16, 16, 16) and 0 < float(voxels.min()) and float(voxels.max()) < 1
    low = VoxelGenerator(z_dim=8, resolution=16, channels=4, max_channels=8, output_bias=-2.0)(torch.randn(3, 8)).detach()
    assert abs(float(low.mean()) - float(torch.sigmoid(torch.tensor(-2.0)))) < 0.05
    d = DCGANDiscriminator(resolution=32, channels=4, max_channels=8)
    assert d(torch.randn(3, 3, 32, 32)).shape == (3,)


def test_dom_is_zero_for_equal_images_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    d = DCGANDiscriminator(resolution=16, channels=4, max_channels=8)
    d(torch.randn(2, 3, 16, 16))  # one power iteration, then freeze it so the by-hand check below is exact
    d.eval()
    opengl = torch.rand(4, 3, 16, 16) * 2 - 1
    proxy = opengl.clone().requires_grad_(True)
    zero = dom_loss(d, proxy, opengl, "log_d")
    assert float(zero) == 0.0
    other = (opengl + 0.5 * torch.randn_like(opengl)).requires_grad_(True)
    positive = dom_loss(d, other, opengl, "log_d")
    assert float(positive) > 0
    positive.backward()
    assert other.grad is not None and other.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() >= 0 for p in d.parameters())  # D is not stepped by DOM
    # Eq. (8) by hand: (log D(opengl) - log D(proxy))^2, one D forward of both
    logits = d(torch.cat([other.detach(), opengl]))
    expected = (torch.nn.functional.logsigmoid(logits[4:]) - torch.nn.functional.logsigmoid(logits[:4])).square().mean()
    assert torch.allclose(positive.detach(), expected, rtol=1e-4, atol=1e-6)


def test_dom_in_probability_space_is_bounded_and_fades_when_d_is_confident() -> None:
    """unflat's own variant (--dom-space probability): (D(opengl) - D(proxy))^2 <= 1, and where D is sure both
    images are fake its gradient vanishes, while the paper's log-D form keeps pulling with a slope of ~1."""
    from unflat.losses.dom import dom_loss_from_logits

    opengl = torch.tensor([-12.0, 0.0, 3.0])
    proxy = torch.tensor([-6.0, 2.0, -3.0], requires_grad=True)
    prob = dom_loss_from_logits(proxy, opengl, "probability")
    expected = (torch.sigmoid(opengl) - torch.sigmoid(proxy.detach())).square().mean()
    assert torch.allclose(prob.detach(), expected) and 0 < float(prob) <= 1
    prob.backward()
    prob_grad = proxy.grad.clone()
    proxy.grad = None
    dom_loss_from_logits(proxy, opengl, "log_d").backward()
    assert abs(float(prob_grad[0])) < 1e-3 < abs(float(proxy.grad[0]))  # both clearly fake: only log D still pulls
    assert float(dom_loss_from_logits(proxy.detach(), proxy.detach(), "probability")) == 0.0
    with pytest.raises(ValueError, match="unknown DOM space"):
        dom_loss_from_logits(proxy, opengl, "logit")  # type: ignore[arg-type]


def test_dom_on_the_discriminator_loss_matches_log_one_minus_d_and_fades_on_confident_fakes() -> None:
    """--dom-space d_loss: F = log(1 - D), D's loss term on a generated image (the paper's introduction). Checked
    against log(1 - sigmoid) computed in float64 the naive way; where D is sure both images are fake its gradient
    vanishes (log D's does not), where D is fooled it keeps pulling (probability's fades)."""
    from unflat.losses.dom import dom_loss_from_logits

    opengl = torch.tensor([-12.0, 0.0, 3.0, 9.0])
    proxy = torch.tensor([-6.0, 2.0, -3.0, 4.0], requires_grad=True)
    loss = dom_loss_from_logits(proxy, opengl, "d_loss")
    naive = lambda l: torch.log1p(-torch.sigmoid(l.double()))  # noqa: E731
    expected = (naive(opengl) - naive(proxy.detach())).square().mean()
    assert torch.allclose(loss.detach().double(), expected, rtol=1e-5)
    loss.backward()
    grad = proxy.grad.clone()
    proxy.grad = None
    dom_loss_from_logits(proxy, opengl, "probability").backward()
    assert abs(float(grad[0])) < 1e-2 < 1.0 < abs(float(grad[3]))  # confident fakes: ~0; fooled D: strong
    assert abs(float(proxy.grad[3])) < 0.1  # the probability form has faded there
    assert float(dom_loss_from_logits(proxy.detach(), proxy.detach(), "d_loss")) == 0.0


def test_dom_space_reaches_the_config_from_the_command_line(tmp_path) -> None:
    from unflat.parsing import parse
    from unflat.methods.iggan import IGGANConfig

    cfg = parse(IGGANConfig, ["--renderer.dom-space", "probability"], "unflat train iggan")
    assert cfg.renderer.dom_space == "probability" and IGGANConfig().renderer.dom_space == "d_loss"
    assert parse(IGGANConfig, ["--renderer.dom-space", "log_d"], "unflat train iggan").renderer.dom_space == "log_d"


def test_runs_saved_before_dom_space_existed_load_with_the_log_d_they_trained_with() -> None:
    """The default changed to d_loss; a saved config without the field (written before it existed, when log D was
    the only form) must resume as trained, while saved configs that name it keep their value."""
    from unflat.config import config_from_yaml, config_to_yaml
    from unflat.methods.iggan import IGGANConfig
    from unflat.methods.iggan_config import IGGANProxyConfig

    saved = config_to_yaml(IGGANConfig(renderer=IGGANProxyConfig(dom_weight=50.0)))
    assert "  dom_space: d_loss" in saved and "defaults_of_older_runs" not in saved
    assert config_from_yaml(IGGANConfig, saved).renderer.dom_space == "d_loss"
    older = "\n".join(line for line in saved.splitlines() if not line.strip().startswith("dom_space:"))
    loaded = config_from_yaml(IGGANConfig, older)
    assert loaded.renderer.dom_space == "log_d" and loaded.renderer.dom_weight == 50.0
    probability = saved.replace("dom_space: d_loss", "dom_space: probability")
    assert config_from_yaml(IGGANConfig, probability).renderer.dom_space == "probability"
    # a flat run of the time before the nesting, without the field, trained with log D too
    flat = (Path(__file__).parents[1] / "fixtures" / "flat_configs" / "iggan-tiny.yaml").read_text()
    assert config_from_yaml(IGGANConfig, flat).renderer.dom_space == "d_loss"
    flat_older = "\n".join(line for line in flat.splitlines() if not line.startswith("dom_space:"))
    assert config_from_yaml(IGGANConfig, flat_older).renderer.dom_space == "log_d"


def test_random_shapes_are_binary_and_seeded() -> None:
    torch.manual_seed(5)
    a = random_shapes(4, 16, "mixed")
    torch.manual_seed(5)
    b = random_shapes(4, 16, "mixed")
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert (a.flatten(1).sum(1) > 0).all()


# ---- the method ------------------------------------------------------------------------------
def _method(data: Path, overrides: dict[str, object] | None = None) -> IGGAN:
    """The tiny iggan on ``data`` with ``overrides`` ({"renderer.freeze": True, ...})."""
    cfg = replace_fields(SPEC.config("tiny"), {"data": data, "device": "cpu", **(overrides or {})})
    cfg.validate()
    torch.manual_seed(0)
    return IGGAN(cfg, open_dataset(data).info, CPU)


def test_two_training_steps_with_opengl_in_the_loop(sphere_dataset: Path) -> None:
    method = _method(sphere_dataset)
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in method.networks().items()}
    seen = []
    original = method.finish_opengl

    def spy(fakes, pending):
        seen.append(original(fakes, pending))
        return seen[-1]

    method.finish_opengl = spy  # records what OpenGL produced; still the real renderer
    for step, batch in enumerate(iterate_batches(sphere_dataset, 0, 2, 2, 0, torch.device("cpu"))):
        logs = method.train_step(batch, step)
        assert all(math.isfinite(float(v)) for v in logs.values())
        assert {"loss_D", "loss_G", "R_l2", "R_dom", "opengl_wait_ms"} <= logs.keys()
        if "opengl_faces_per_mesh" in logs:  # moderngl backend: its own timing of the batch
            assert logs["opengl_faces_per_mesh"] >= 0 and logs["opengl_prepare_ms"] > 0 and logs["opengl_draw_ms"] > 0
    assert len(seen) == 2 and seen[0].shape == (2, 3, 16, 16)
    for name, module in method.networks().items():
        changed = any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters()))
        assert changed, f"{name} was not updated"


def test_overlapped_render_gives_the_same_step(sphere_dataset: Path) -> None:
    """The proxy's forward pass moved before the D update (to overlap OpenGL) changes no number."""
    results = []
    for overlap in (True, False):
        method = _method(sphere_dataset, {"rendering.overlap": overlap})
        torch.manual_seed(11)
        for step, batch in enumerate(iterate_batches(sphere_dataset, 0, 2, 2, 0, torch.device("cpu"))):
            logs = method.train_step(batch, step)
        results.append((logs, {k: v.detach().clone() for k, v in method.renderer.state_dict().items()},
                        {k: v.detach().clone() for k, v in method.G.state_dict().items()}))
    (logs_a, r_a, g_a), (logs_b, r_b, g_b) = results
    losses = [k for k in logs_a if not k.startswith("opengl_")]  # opengl_*: wall-clock timings and mesh sizes
    assert losses and all(float(logs_a[k]) == float(logs_b[k]) for k in losses)
    assert all(torch.equal(r_a[k], r_b[k]) for k in r_a) and all(torch.equal(g_a[k], g_b[k]) for k in g_a)


def test_dom_weight_zero_and_frozen_renderer(sphere_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="renderer.freeze"):
        replace_fields(SPEC.config("tiny"), {"data": sphere_dataset, "renderer.freeze": True}).validate()
    # a bare state dict counts as a pre-trained renderer
    donor = _method(sphere_dataset)
    torch.save(donor.renderer.state_dict(), tmp_path / "renderer.pt")
    method = _method(sphere_dataset, {"renderer.freeze": True, "renderer.dom_weight": 0.0,
                                      "renderer.checkpoint": tmp_path / "renderer.pt"})
    frozen = [p.detach().clone() for p in method.renderer.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(frozen, donor.renderer.parameters()))
    batch = next(iterate_batches(sphere_dataset, 0, 1, 2, 0, torch.device("cpu")))
    logs = method.train_step(batch, 0)
    assert float(logs["R_dom"]) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(frozen, method.renderer.parameters()))


def test_train_resume_generate_export_through_the_engine(sphere_dataset: Path, tmp_path: Path) -> None:
    from unflat.runs import load_run

    assert_resume_matches_straight(SPEC, replace(SPEC.config("tiny"), data=sphere_dataset, device="cpu", tensorboard=False), tmp_path)

    loaded = load_run(tmp_path / "split", "cpu")
    paths = loaded.method.generate(tmp_path / "gen", 2, seed=3)
    names = {p.name for p in paths}
    assert {"renders.png", "render_0003.npy".replace(".npy", ".png"), "voxels_0004.npy"} <= names
    voxels = np.load(tmp_path / "gen" / "voxels_0003.npy")
    assert voxels.shape == (16, 16, 16)
    meshes = loaded.method.export(tmp_path / "export", 2, seed=3, formats=("glb", "obj"))
    glb = [p for p in meshes if p.suffix == ".glb"]
    assert glb, meshes
    assert {p.name for p in meshes} <= {"mesh_0003.glb", "mesh_0003.obj", "mesh_0004.glb", "mesh_0004.obj"}
    assert (tmp_path / "export" / "export.json").is_file()
    mesh = trimesh.load(glb[0], force="mesh")
    assert len(mesh.faces) > 0 and np.abs(mesh.vertices).max() <= 1.0 + 1e-5
    # sampling is deterministic in the seed
    s1, s2 = loaded.method.sample(2, seed=9), loaded.method.sample(2, seed=9)
    assert torch.equal(s1.images, s2.images)


# ---- renderer pre-training -------------------------------------------------------------------
def test_renderer_pretraining_lowers_l2_to_opengl() -> None:
    cfg = replace(RENDERER_SPEC.config("tiny"), device="cpu", shapes="cubes", batch_size=8, lr=3e-3)
    cfg.validate()
    torch.manual_seed(0)
    method = IGGANRenderer(cfg, IGGANRenderer.builtin_data_info(cfg), CPU)
    torch.manual_seed(1234)  # held-out shapes and views
    shapes = random_shapes(8, cfg.voxel_resolution, "cubes")
    views = sample_views(8, cfg.cameras.radius, cfg.cameras.fov_deg, (-180, 180), cfg.cameras.elevation_range)
    before = method.evaluate_l2(shapes, views)
    for step in range(30):
        torch.manual_seed(step)
        method.train_step(None, step)
    after = method.evaluate_l2(shapes, views)
    assert after < 0.5 * before, (before, after)


def test_pretrained_renderer_run_is_reused(sphere_dataset: Path, tmp_path: Path) -> None:
    from unflat.runs import train

    rcfg = replace(RENDERER_SPEC.config("tiny"), out=tmp_path / "renderer", device="cpu", max_steps=1, tensorboard=False)
    train(RENDERER_SPEC, rcfg)
    from unflat.engine import checkpoint as ckpt

    saved = ckpt.load_checkpoint(tmp_path / "renderer")["method_state"]["networks"]["renderer"]
    method = _method(sphere_dataset, {"renderer.checkpoint": tmp_path / "renderer"})
    for key, value in method.renderer.state_dict().items():
        assert torch.equal(value, saved[key]), key
    with pytest.raises(ConfigError, match="renderer.checkpoint.*add --renderer.channels-2d 16"):
        _method(sphere_dataset, {"renderer.checkpoint": tmp_path / "renderer", "renderer.channels_2d": 8})
    # a GAN run that used it still loads once the pre-training run is gone; a fresh run refuses to train
    from unflat.runs import load_run

    gan = replace_fields(SPEC.config("tiny"), {"data": sphere_dataset, "out": tmp_path / "gan", "device": "cpu",
                                               "max_steps": 1, "tensorboard": False,
                                               "renderer.checkpoint": tmp_path / "renderer"})
    train(SPEC, gan)
    (tmp_path / "renderer").rename(tmp_path / "moved")
    assert load_run(tmp_path / "gan", "cpu").method.sample(1, seed=0).images.shape == (1, 3, 16, 16)
    fresh = _method(sphere_dataset, {"renderer.checkpoint": tmp_path / "renderer"})
    batch = next(iterate_batches(sphere_dataset, 0, 1, 2, 0, torch.device("cpu")))
    with pytest.raises(ConfigError, match="does not exist"):
        fresh.train_step(batch, 0)


def test_exported_voxel_meshes_drop_stray_voxels(sphere_dataset: Path) -> None:
    from unflat.data.format import open_dataset
    from unflat.methods.base import TrainContext

    cfg = replace_fields(SPEC.config("tiny"), {"data": sphere_dataset, "device": "cpu", "export.mesh_min_component": 0.0})
    method = SPEC.method_cls(cfg, open_dataset(sphere_dataset).info, TrainContext(torch.device("cpu")))
    r = cfg.voxel_resolution
    voxels = torch.full((1, 1, r, r, r), 0.1)
    c = r // 2
    voxels[0, 0, c - 4:c + 4, c - 4:c + 4, c - 4:c + 4] = 0.9  # the object: a block at the centre
    voxels[0, 0, c + 4, c - 1:c + 1, c - 1:c + 1] = 0.9  # ... with a bump touching it (kept)
    for x, y, z in [(1, 1, 1), (r - 2, 1, r - 2), (1, r - 2, c)]:  # stray voxels in three corners
        voxels[0, 0, x, y, z] = 0.8
    (mesh,) = method.meshes(voxels)
    assert len(mesh.split(only_watertight=False)) == 1
    half = cfg.voxel_extent
    assert np.abs(mesh.vertices).max() < half * 0.7  # nothing near the corners
    bump = mesh.vertices[:, 0].max()
    assert bump > (c + 4 - (r - 1) / 2) / ((r - 1) / 2) * half - 1e-3  # the bump stayed with the block
    # without the object step the same grid meshes into four pieces: the test sees the difference
    from unflat.render.voxel_pipeline import voxels_to_meshes

    assert len(voxels_to_meshes(voxels, 0.5, half)[0].split(only_watertight=False)) == 4
