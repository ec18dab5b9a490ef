"""The `progressive` method: its three stages, exact resume across a stage boundary, reconstruction
to a textured GLB, the data bridge from a generator, and its losses."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from unflat.config import replace_fields
from unflat.data.format import open_dataset
from unflat.errors import ConfigError, UserError
from unflat.methods.base import Samples, TrainContext
from unflat.data.object_image import prepare_image
from unflat.methods.progressive import Progressive, ProgressiveConfig, tiny

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(data: Path, out: Path, **kw) -> ProgressiveConfig:
    """tiny() with data, out and ``kw`` (dotted paths for group fields: **{"schedule.stage2_start": 3})."""
    return replace_fields(tiny(), {"data": data, "out": out, **kw})


def _params(run: Path) -> dict[str, torch.Tensor]:
    from unflat.engine.checkpoint import load_checkpoint

    state = load_checkpoint(run)["method_state"]
    flat = {f"{n}.{k}": v for n, sd in state["networks"].items() for k, v in sd.items()}
    for name, opt in state["optimizers"].items():
        for pid, st in opt["state"].items():
            for key, value in st.items():
                if isinstance(value, torch.Tensor):
                    flat[f"opt.{name}.{pid}.{key}"] = value
    return flat


def _spec():
    from unflat.methods.registry import get_method

    return get_method("progressive")


def test_two_steps_of_each_stage_on_tiny(multiview_sphere_dataset: Path, tmp_path: Path):
    from unflat.runs import train

    result = train(_spec(), _cfg(multiview_sphere_dataset, tmp_path / "run"))
    assert result.step == 6
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == [1, 1, 2, 2, 3, 3]
    for r in rows:
        assert np.isfinite(r["loss_total"]) and np.isfinite(r["loss_iou"])
        assert ("loss_same_view" in r) == (r["stage"] >= 2)
        assert ("loss_d" in r) == (r["stage"] == 3) and ("loss_g_adv" in r) == (r["stage"] == 3)
    assert list((tmp_path / "run" / "samples").glob("*.png"))


def test_resume_across_a_stage_boundary_is_exact(multiview_sphere_dataset: Path, tmp_path: Path):
    from unflat.engine.checkpoint import load_checkpoint
    from unflat.runs import resume, train

    spec = _spec()
    train(spec, _cfg(multiview_sphere_dataset, tmp_path / "straight"))
    train(spec, _cfg(multiview_sphere_dataset, tmp_path / "split", max_steps=3))
    assert load_checkpoint(tmp_path / "split")["method_state"]["extra"]["stage"] == 2
    resume(tmp_path / "split", {"max_steps": 6})  # steps 3 (stage II), 4 and 5 (stage III)
    assert load_checkpoint(tmp_path / "split")["method_state"]["extra"]["stage"] == 3
    a, b = _params(tmp_path / "straight"), _params(tmp_path / "split")
    assert a.keys() == b.keys() and any(k.startswith("opt.D") for k in a)  # D was trained in stage III
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture
def trained_run(multiview_sphere_dataset: Path, tmp_path: Path) -> Path:
    from unflat.runs import train

    return train(_spec(), _cfg(multiview_sphere_dataset, tmp_path / "run", max_steps=2, sample_every=0)).run_dir


def test_reconstruct_one_image_to_a_textured_glb(trained_run: Path, multiview_sphere_dataset: Path, tmp_path: Path):
    from unflat.runs import load_run

    method = load_run(trained_run, "cpu").method
    data = open_dataset(multiview_sphere_dataset)
    image_path = tmp_path / "photo.png"
    Image.fromarray(np.asarray(data.images[0])).resize((40, 40)).save(image_path)
    # input_colours=0: the network's own texture (the blend of the input's colours is tested on its own)
    written = method.reconstruct([image_path], tmp_path / "out", turntable_frames=4, turntable_resolution=24,
                                 input_colours=0.0)
    glb = tmp_path / "out" / "photo.glb"
    assert glb in written and (tmp_path / "out" / "photo.gif").exists() and (tmp_path / "out" / "photo-input.png").exists()
    mesh = trimesh.load(glb, force="mesh")
    assert len(mesh.faces) == method.template.num_faces
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    tex = mesh.visual.material.baseColorTexture
    assert tex is not None and tex.size == (8, 8)
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    # The texture in the file is the predicted one.
    images = torch.from_numpy(np.array(Image.open(tmp_path / "out" / "photo-input.png"))).permute(2, 0, 1)[None]
    _, texture = method._predict_eval(images.float() / 127.5 - 1)
    expected = ((texture[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(tex.convert("RGB")).astype(int) - expected.astype(int)).max() <= 1


def test_reconstruct_folder_in_batches_with_masks_and_unreadable_files(trained_run: Path, tmp_path: Path):
    from unflat.runs import load_run

    method = load_run(trained_run, "cpu").method
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    masks = []
    for name in ("a", "b", "c"):
        img = np.full((30, 30, 3), 250, np.uint8)
        img[8:20, 10:24] = rng.integers(0, 200, 3)
        Image.fromarray(img).save(folder / f"{name}.png")
        mask = np.zeros((30, 30), np.uint8)
        mask[8:20, 10:24] = 255
        Image.fromarray(mask).save(tmp_path / f"{name}-mask.png")
        masks.append(tmp_path / f"{name}-mask.png")
    written = method.reconstruct([folder], tmp_path / "out", masks=masks, batch_size=2, turntable=False)
    assert sorted(p.name for p in written if p.suffix == ".glb") == ["a.glb", "b.glb", "c.glb"]
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert [m["mesh"] for m in record["meshes"]] == ["a", "b", "c"] and record["settings"]["masks"] is True
    exported = method.export(tmp_path / "export", 2, seed=0, formats=("glb", "ply"))
    assert [p.name for p in exported] == ["mesh_0000.glb", "mesh_0000.ply", "mesh_0001.glb", "mesh_0001.ply"]
    assert json.loads((tmp_path / "export" / "export.json").read_text())["settings"]["seed"] == 0
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(UserError, match="broken.png"):
        method.reconstruct([broken], tmp_path / "out2")
    with pytest.raises(UserError, match="no such image"):
        method.reconstruct([tmp_path / "missing.jpg"], tmp_path / "out3")


def test_prepare_image_centres_and_frames_the_object():
    img = np.full((60, 80, 3), 255, np.uint8)
    img[5:25, 50:70] = (200, 30, 30)  # a 20x20 red square, off-centre
    mask = np.zeros((60, 80), np.float32)
    mask[5:25, 50:70] = 1
    for m in (mask, None):
        out = prepare_image(img, m, 32, object_extent=0.5)
        red = (out[..., 0] > 0.6) & (out[..., 1] < 0.3)
        rows, cols = np.nonzero(red.any(1))[0], np.nonzero(red.any(0))[0]
        assert abs((rows[0] + rows[-1]) / 2 - 15.5) <= 1 and abs((cols[0] + cols[-1]) / 2 - 15.5) <= 1
        assert abs((rows[-1] - rows[0] + 1) - 16) <= 2  # spans half the crop


def test_prepare_image_crop_none_keeps_the_framing_and_replaces_the_background():
    img = np.full((64, 64, 3), 40, np.uint8)  # dark background
    img[4:20, 40:60] = (200, 30, 30)  # a small object near a corner: its place and size are the point
    mask = np.zeros((64, 64), np.float32)
    mask[4:20, 40:60] = 1
    out, fg = prepare_image(img, mask, 32, object_extent=0.6, background=np.ones(3, np.float32), return_mask=True,
                            crop="none")
    expected = np.zeros((32, 32), bool)
    expected[2:10, 20:30] = True  # the same box at half the size
    assert (fg > 0.5).sum() == expected.sum() and ((fg > 0.5) == expected).all()
    far = np.ones((32, 32), bool)
    far[0:12, 18:32] = False  # away from the object's resampled edge
    assert np.allclose(out[far], 1.0, atol=0.02)  # background under the mask -> the training data's (white)
    assert np.allclose(out[4, 24], (200 / 255, 30 / 255, 30 / 255), atol=0.02)
    cropped = prepare_image(img, mask, 32, object_extent=0.6)  # the default crops: the object moves to the centre
    assert cropped[16, 16, 1] < 0.3 and out[16, 16, 1] > 0.9
    with pytest.raises(ValueError, match="square"):
        prepare_image(img[:, :50], None, 32, crop="none")


def test_reconstruct_crop_none_refuses_a_non_square_image(trained_run: Path, tmp_path: Path):
    from unflat.runs import load_run

    method = load_run(trained_run, "cpu").method
    Image.fromarray(np.full((30, 40, 3), 250, np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(UserError, match="wide.png.*not square.*--crop object"):
        method.reconstruct([tmp_path / "wide.png"], tmp_path / "out", crop="none", turntable=False)
    Image.fromarray(np.full((40, 40, 3), 250, np.uint8)).save(tmp_path / "square.png")
    written = method.reconstruct([tmp_path / "square.png"], tmp_path / "out", crop="none", turntable=False)
    assert [p.name for p in written if p.suffix == ".glb"] == ["square.glb"]


def _prepare_image_reference(rgb, mask, resolution, object_extent, background, content):
    """The straightforward float32 version of prepare_image (its first implementation), as the reference."""
    from PIL import Image

    image = rgb.astype(np.float32) / 255
    top, left, bottom, right = content
    background = np.ones(3, np.float32) if background is None else np.asarray(background, np.float32)
    if mask is None:
        real = image[top:bottom, left:right]
        border = np.concatenate([real[0], real[-1], real[:, 0], real[:, -1]])
        background = np.median(border, axis=0).astype(np.float32)
        filled = np.empty_like(image)
        filled[:] = background
        filled[top:bottom, left:right] = real
        image = filled
        fg = np.abs(image - background).max(-1) > 0.08
    else:
        fg = mask > 0.5
        image = image * mask[..., None] + background * (1 - mask[..., None])
    rows, cols = np.nonzero(fg.any(1))[0], np.nonzero(fg.any(0))[0]
    y_lo, y_hi, x_lo, x_hi = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = max(int(np.ceil(max(y_hi - y_lo, x_hi - x_lo) / object_extent)), 1)
    y0, x0 = int(round((y_lo + y_hi) / 2 - side / 2)), int(round((x_lo + x_hi) / 2 - side / 2))
    canvas = np.empty((side, side, 3), np.float32)
    canvas[:] = background
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + side, image.shape[0]), min(x0 + side, image.shape[1])
    canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    resized = Image.fromarray((canvas * 255).round().astype(np.uint8)).resize((resolution, resolution), Image.LANCZOS)
    return np.asarray(resized, dtype=np.float32) / 255


@pytest.mark.parametrize("with_mask", [False, True])
def test_prepare_image_matches_the_float_reference(with_mask):
    """The uint8 fast path gives the float reference's pixels (to one grey level) on a padded, noisy photo with a
    soft mask, an object near the border (the crop leaves the image) and a non-white background."""
    rng = np.random.default_rng(3)
    img = np.full((96, 96, 3), 255, np.uint8)  # padded like read_image_rgb: real pixels in rows 16..80
    content = (16, 0, 80, 96)
    img[16:80] = (rng.normal(120, 6, (64, 96, 3))).clip(0, 255).astype(np.uint8)
    img[20:60, 60:94] = rng.integers(0, 256, (40, 34, 3), dtype=np.uint8)  # textured object at the right edge
    mask = np.zeros((96, 96), np.float32)
    mask[20:60, 60:94] = 1
    mask[18:20, 60:94] = 0.5  # soft edge
    m = mask if with_mask else None
    background = np.array([0.9, 0.8, 0.7], np.float32) if with_mask else None
    ours = prepare_image(img, m, 32, 0.6, background, content)
    ref = _prepare_image_reference(img, m, 32, 0.6, background, content)
    assert ours.shape == ref.shape == (32, 32, 3)
    assert np.abs(ours - ref).max() <= 1 / 255 + 1e-6


def _method(dataset: Path, **kw) -> Progressive:
    cfg = replace_fields(tiny(), {"data": dataset, **kw})
    return Progressive(cfg, open_dataset(dataset).info, TrainContext(CPU))


def test_symmetric_prediction_is_mirror_symmetric_and_switchable(multiview_sphere_dataset: Path):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    for symmetric in (True, False):
        method = _method(multiview_sphere_dataset, **{"decoder.symmetric": symmetric})
        with torch.no_grad():  # make the deformation large enough to matter
            method.net.decoder.mesh_out.weight.normal_(0, 0.3)
        verts, _ = method._predict_eval(images)
        mirrored = verts * torch.tensor([-1.0, 1, 1])
        gap = (mirrored[:, :, None] - verts[:, None]).norm(dim=-1).min(-1).values.max()
        assert (gap < 1e-4) if symmetric else (gap > 1e-2), (symmetric, gap)


def test_stage_schedule_and_config_validation(multiview_sphere_dataset: Path):
    method = _method(multiview_sphere_dataset, **{"schedule.stage2_start": 3, "schedule.stage3_start": 5})
    assert [method.stage_at(s) for s in range(7)] == [1, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ConfigError, match="--schedule.stage3-start"):
        replace_fields(tiny(), {"schedule.stage2_start": 5, "schedule.stage3_start": 3}).validate()
    with pytest.raises(ConfigError, match="--decoder.texture-resolution"):
        replace_fields(tiny(), {"decoder.texture_resolution": 12}).validate()


def test_perceptual_auto_without_weights_asks_for_a_backbone(monkeypatch, tmp_path: Path):
    from unflat import pretrained
    from unflat.losses.perceptual import build_feature_extractor

    monkeypatch.setattr(pretrained, "checkpoint_dirs", lambda: [tmp_path])
    monkeypatch.setattr(pretrained, "efficientnet_available", lambda: False)
    with pytest.raises(UserError, match="unflat train backbone"):
        build_feature_extractor("auto")


def test_perceptual_loss_respects_masks_and_is_zero_for_equal_images():
    from unflat.losses.perceptual import PerceptualLoss, PyramidFeatures

    torch.manual_seed(0)
    loss = PerceptualLoss(PyramidFeatures())
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    b = a.clone()
    b[..., :8] = -a[..., :8]
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 9:] = 1
    assert loss(a, a) == 0 and loss(a, b) > 0
    assert loss(a, b, mask=mask) < 1e-12  # differences only outside the mask
    # A tiny conv feature net, as tests may pass explicitly: unit-normalised features, LPIPS style.
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    lpips_like = PerceptualLoss(lambda x: [net(x)], normalise=True, min_size=0)
    assert lpips_like(a, a) == 0 and lpips_like(a, b) > 0


def test_iou_and_laplacian_losses_against_references():
    import trimesh as tm

    from unflat.geometry.laplacian import laplacian_loss, uniform_laplacian
    from unflat.geometry.sphere_template import sphere_template
    from unflat.losses.silhouette import iou_loss

    pred = torch.zeros(1, 1, 4, 4)
    pred[..., :2, :] = 1  # 8 pixels
    target = torch.zeros(1, 1, 4, 4)
    target[..., 1:3, :] = 1  # 8 pixels, 4 shared
    assert torch.isclose(iou_loss(pred, target), torch.tensor(1 - 4 / 12))
    t = sphere_template(6, 8)
    lap = uniform_laplacian(t.faces, t.num_vertices)
    mesh = tm.Trimesh(t.vertices.numpy(), t.faces.numpy(), process=False)
    verts = t.vertices.double()
    expected = sum(
        float(((verts[i] - verts[list(n)].mean(0)) ** 2).sum()) for i, n in enumerate(mesh.vertex_neighbors)
    )
    assert abs(laplacian_loss(t.vertices[None], lap).item() - expected) < 1e-4
    assert torch.allclose(laplacian_loss(t.vertices[None] + 3.0, lap), laplacian_loss(t.vertices[None], lap), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# from-generator
# ---------------------------------------------------------------------------------------------
class SphereGenerator:
    """A stand-in 3D generator that follows the multi-view sample contract: latent i is a sphere of
    radius r_i (from the seed) ray-traced at cameras i*V..i*V+V-1. Radius 0.05 = a failed sample."""

    device = CPU
    multiview_generator = True  # it claims the contract; write_from_generator still checks what it returns
    background = "white"  # what it renders behind its spheres (Method.background)

    def __init__(self, views: int, resolution: int = 16) -> None:
        self.views, self.resolution = views, resolution
        self.calls: list[tuple[int, int]] = []

    def sample(self, n, seed, class_ids=None, cameras=None):
        self.calls.append((n, seed))
        g = torch.Generator().manual_seed(seed)
        radius = torch.where(torch.rand(n, generator=g) < 0.3, torch.tensor(0.05), 0.4 + 0.4 * torch.rand(n, generator=g))
        radius = radius.repeat_interleave(self.views)
        origins, dirs = cameras.rays(self.resolution, self.resolution)
        b = (origins * dirs).sum(-1)
        c = (origins * origins).sum(-1) - radius[:, None] ** 2
        hit = b * b - c > 0
        t = -b - torch.sqrt((b * b - c).clamp_min(0))
        shade = torch.where(hit, 0.5 + 0.4 * torch.tanh(t - 2), torch.ones_like(t))
        size = self.resolution
        images = (shade * 2 - 1).view(-1, 1, size, size).expand(-1, 3, -1, -1)
        masks = hit.float().view(-1, 1, size, size)
        z = t * (dirs @ cameras.cam2world[:, :3, 2:3]).squeeze(-1)
        depth = torch.where(hit, z, torch.zeros_like(z)).view(-1, 1, size, size)
        return Samples(images=images, cameras=cameras, masks=masks, depth=depth, class_ids=class_ids)


def test_from_generator_writes_a_filtered_posed_multiview_dataset(tmp_path: Path):
    from unflat.data.from_generator import FromGeneratorConfig, write_from_generator

    views = 3
    gen = SphereGenerator(views)
    cfg = FromGeneratorConfig(run=tmp_path / "unused", out=tmp_path / "mv", num_shapes=5, views_per_shape=views,
                              camera_mode="ring", elevation_range=(10.0, 30.0), min_mask_fraction=0.03,
                              batch_shapes=4, seed=1)
    out = write_from_generator(gen, cfg, ("thing",), 16, radius=2.5, fov=40.0)
    data = open_dataset(out)
    assert data.info.num_shapes == 5 and data.info.views_per_shape == views and data.info.has_depth
    assert len(data) == 15
    assert (data.shape_ids == np.repeat(np.arange(5), views)).all()
    fractions = (np.asarray(data.masks) > 127).reshape(15, -1).mean(1)
    assert fractions.min() >= 0.03  # the 0.05-radius failures were filtered out
    assert len(gen.calls) >= 2  # the filter made it draw more latents
    az, el, radius = data.cameras.to_orbit()
    az = az.view(5, views)
    spacing = torch.remainder(az[:, 1:] - az[:, :-1], 360)
    assert torch.allclose(spacing, torch.full_like(spacing, 120.0), atol=1e-3)
    assert ((el >= 10 - 1e-3) & (el <= 30 + 1e-3)).all() and torch.allclose(radius, torch.full_like(radius, 2.5), atol=1e-4)
    # Each view's mask is the generator's silhouette from that dataset camera (views stay consistent).
    again = gen.sample(1, 0, cameras=data.cameras[0:views])
    hit_depth = torch.from_numpy(np.asarray(data.depth[0:views], dtype=np.float32))
    assert (((hit_depth > 0).float() - (again.depth[:, 0] > 0).float()).abs().mean() < 0.5)
    # The dataset trains progressive directly.
    method = Progressive(replace(tiny(), data=out), data.info, TrainContext(CPU))
    from unflat.data.loader import iterate_batches

    batch = next(iterate_batches(out, 0, 1, 2, 0, CPU, views_per_sample=2))
    assert np.isfinite(float(method.train_step(batch, 0)["loss_total"]))


def test_from_generator_rejects_methods_without_the_multiview_contract(tmp_path: Path):
    from unflat.data.from_generator import FromGeneratorConfig, write_from_generator

    class OneViewPerLatent(SphereGenerator):
        def sample(self, n, seed, class_ids=None, cameras=None):
            out = super().sample(n, seed, class_ids, cameras)
            return Samples(images=out.images[::self.views], masks=out.masks[::self.views])

    cfg = FromGeneratorConfig(run=tmp_path, out=tmp_path / "x", num_shapes=2, views_per_shape=2)
    with pytest.raises(UserError, match="multi-view contract"):
        write_from_generator(OneViewPerLatent(2), cfg, ("a",), 16, 2.5, 40.0)
    assert not (tmp_path / "x").exists()


def test_evaluate_same_and_novel_views(multiview_sphere_dataset: Path):
    from unflat.metrics.evaluate import ReconstructionEvaluation

    method = _method(multiview_sphere_dataset)
    views = method.evaluate_views(multiview_sphere_dataset, num_shapes=4, seed=0, batch_size=3)
    data = open_dataset(multiview_sphere_dataset)
    for name in ("same", "novel"):
        v = views[name]
        assert v["pred_images"].shape == v["target_images"].shape == (4, 3, 16, 16)
        assert v["pred_masks"].shape == v["target_masks"].shape == (4, 1, 16, 16)
        assert 0 <= v["pred_images"].min() and v["pred_images"].max() <= 1
    # Targets are dataset images: each same-view target is one of the dataset's images.
    all_images = torch.from_numpy(np.asarray(data.images, dtype=np.float32) / 255).permute(0, 3, 1, 2)
    for target in views["same"]["target_images"]:
        assert (all_images - target).abs().flatten(1).amax(1).min() < 1e-6
    result = method.evaluate(multiview_sphere_dataset, num_shapes=4)
    assert isinstance(result["novel_view"], ReconstructionEvaluation)
    assert 0 <= result["same_view"].silhouette_iou.mean <= 1 and result["novel_view"].ssim is not None


def test_exported_texture_orientation_matches_the_renderer(multiview_sphere_dataset: Path, tmp_path: Path):
    """A texture whose top rows are red and bottom rows blue: after a GLB round trip, trimesh's
    texture lookup gives red exactly where unflat's renderer looks up the top rows (v < 0.5)."""
    method = _method(multiview_sphere_dataset)
    texture = torch.zeros(3, 8, 8)
    texture[0, :4] = 1  # red on top (rows 0..3), in [-1,1]: red = (1,-1,-1)
    texture[1:, :4] = -1
    texture[2, 4:] = 1
    texture[:2, 4:] = -1
    verts = method.template.vertices * 0.5
    path = tmp_path / "oriented.glb"
    path.write_bytes(trimesh.exchange.gltf.export_glb(method.to_trimesh(verts, texture)))
    mesh = trimesh.load(path, force="mesh")
    colours = np.asarray(mesh.visual.to_color().vertex_colors)[:, :3].astype(int)
    v_unflat = 1 - np.asarray(mesh.visual.uv)[:, 1]
    top, bottom = v_unflat < 0.4, v_unflat > 0.6
    assert top.any() and bottom.any()
    assert (colours[top, 0] > 200).all() and (colours[top, 2] < 50).all()
    assert (colours[bottom, 2] > 200).all() and (colours[bottom, 0] < 50).all()
    # and unflat's own lookup agrees
    from unflat.render.rasterizer import texture as lookup

    uv = method.template.uv
    ours = lookup((texture[None] + 1) / 2, uv[None, None])[0, 0]
    assert (ours[uv[:, 1] < 0.4, 0] > 0.9).all() and (ours[uv[:, 1] > 0.6, 2] > 0.9).all()


def test_evaluate_views_can_blend_the_input_colours(multiview_sphere_dataset: Path):
    method = _method(multiview_sphere_dataset)
    plain = method.evaluate_views(multiview_sphere_dataset, num_shapes=3, seed=0)
    blended = method.evaluate_views(multiview_sphere_dataset, num_shapes=3, seed=0, input_colours=1.0)
    assert plain["input_index"] == blended["input_index"] and len(plain["input_index"]) == 3
    assert blended["same"]["pred_images"].shape == plain["same"]["pred_images"].shape
    assert torch.isfinite(blended["same"]["pred_images"]).all()
    assert torch.equal(blended["same"]["pred_masks"], plain["same"]["pred_masks"])  # geometry unchanged
    # the input's colours move the same-view render towards the input (the untrained texture is far from it)
    def err(v):
        m = v["same"]["target_masks"] > 0.5
        return float((v["same"]["pred_images"] - v["same"]["target_images"]).abs().mean(1, keepdim=True)[m].mean())
    assert err(blended) < err(plain)


def test_runs_saved_before_the_normalised_network_load_as_legacy():
    from unflat.config import config_from_dict

    old = config_from_dict(ProgressiveConfig, {"max_steps": 10})  # a saved config without the new fields
    assert (old.arch, old.decoder.global_scale, old.losses.w_input_texture) == ("legacy", False, 0.0)
    new = ProgressiveConfig()
    assert (new.arch, new.decoder.global_scale, new.losses.w_input_texture) == ("normalised", True, 1.0)


needs_efficientnet = pytest.mark.skipif(not __import__("unflat.pretrained").pretrained.efficientnet_available(),
                                        reason="the efficientnet extra is not installed")


@needs_efficientnet
def test_efficientnet_encoder_fine_tunes_the_imagenet_weights_with_frozen_batchnorm(multiview_sphere_dataset: Path):
    from unflat import pretrained

    method = _method(multiview_sphere_dataset, **{"encoder.backbone": "efficientnet"})
    backbone = method.net.encoder.backbone
    reference = pretrained.load_efficientnet_lite0()
    assert torch.equal(backbone._conv_stem.weight, reference._conv_stem.weight)  # starts from ImageNet
    stats = backbone._bn0.running_mean.clone()
    method.net.train()
    assert not backbone.training and method.net.encoder.reduce.training
    optimizer = torch.optim.Adam(method.net.parameters(), lr=1e-3)
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    deformation, texture = method.net(images)
    (deformation.square().mean() + texture.mean()).backward()
    optimizer.step()
    assert torch.equal(backbone._bn0.running_mean, stats)  # BatchNorm keeps ImageNet statistics
    assert not torch.equal(backbone._conv_stem.weight, reference._conv_stem.weight)  # but the weights are tuned
    with torch.no_grad():  # and the prediction follows the input
        d0, _ = method.net.eval()(images[:2])
    assert (d0[0] - d0[1]).abs().mean() > 1e-3 * d0.abs().mean()


@needs_efficientnet
def test_efficientnet_encoder_run_saves_and_loads_for_reconstruction(multiview_sphere_dataset: Path, tmp_path: Path):
    from unflat.runs import load_run, train

    run = train(_spec(), _cfg(multiview_sphere_dataset, tmp_path / "run", max_steps=2, sample_every=0,
                              **{"encoder.backbone": "efficientnet"})).run_dir
    trained = _params(run)
    method = load_run(run, "cpu").method
    assert method.cfg.encoder.backbone == "efficientnet"
    loaded = {f"G.{k}": v for k, v in method.net.state_dict().items()}
    stem = "G.encoder.backbone._conv_stem.weight"
    assert torch.equal(loaded[stem], trained[stem]) and torch.equal(loaded["G.encoder.fc.weight"], trained["G.encoder.fc.weight"])
    data = open_dataset(multiview_sphere_dataset)
    image_path = tmp_path / "view.png"
    Image.fromarray(np.asarray(data.images[0])).save(image_path)
    method.reconstruct([image_path], tmp_path / "out", turntable=False, input_colours=0.0)
    assert trimesh.load(tmp_path / "out" / "view.glb", force="mesh").vertices.shape[0] > 0


def test_older_runs_keep_the_conv_encoder():
    from unflat.config import config_from_dict

    assert config_from_dict(ProgressiveConfig, {"max_steps": 10}).encoder.backbone == "conv"
    assert ProgressiveConfig().encoder.backbone == "conv"
