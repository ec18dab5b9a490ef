"""Runs saved before the configs nested by component wrote every field flat (``d_channel_base: 128``): their
config.yaml and checkpoints still load, resume bit for bit and train again. The flat files in
tests/fixtures/flat_configs/ were written by unflat's code of that time (the tiny presets)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from unflat import cli
from unflat.config import (config_from_dict, config_from_yaml, migrate_flat_keys, replace_fields, run_config_text,
                           to_plain)
from unflat.methods.registry import get_method

pytestmark = pytest.mark.usefixtures("one_thread")
FLAT = Path(__file__).parent / "fixtures" / "flat_configs"


@pytest.mark.parametrize("method", ["mvtriplane", "3dgp"])
def test_an_old_flat_config_is_the_same_config_nested(method: str):
    spec = get_method(method)
    text = (FLAT / f"{method}-tiny.yaml").read_text()
    flat = yaml.safe_load(text)
    assert "d_channel_base" in flat and "discriminator" not in flat  # the fixture is really flat
    # written when the tiny presets' mesh level was EG3D's fixed 10 (before "auto"): the old run keeps its level
    assert flat["mesh_density"] == 10.0
    # and, written before the density blob, trained without it
    assert config_from_yaml(spec.config_cls, text) == replace_fields(spec.config("tiny"), {"export.mesh_density": 10.0,
                                                                                         "generator.density_blob": 0.0})
    nested = to_plain(spec.config("tiny"))
    assert config_from_dict(spec.config_cls, nested) == spec.config("tiny")  # a nested config stays as it is


@pytest.mark.parametrize("method", ["iggan", "iggan-renderer"])
def test_an_old_flat_iggan_config_is_the_same_config_nested(method: str):
    spec = get_method(method)
    text = (FLAT / f"{method}-tiny.yaml").read_text()
    flat = yaml.safe_load(text)
    assert "renderer_channels_3d" in flat and "renderer" not in flat  # the fixture is really flat
    assert config_from_yaml(spec.config_cls, text) == spec.config("tiny")
    assert config_from_dict(spec.config_cls, to_plain(spec.config("tiny"))) == spec.config("tiny")


def test_iggan_flat_names_move_to_their_components():
    iggan = get_method("iggan").config_cls
    moved = migrate_flat_keys(iggan, {"seed": 1, "g_max_channels": 32, "lr_d": 0.1, "lr_renderer": 0.2,
                                      "renderer_checkpoint": "r", "renderer_backend": "pyrender",
                                      "export_threshold": 0.4, "view_range": "limited", "mask_real_images": "on"})
    assert moved == {"seed": 1, "generator": {"max_channels": 32}, "discriminator": {"lr": 0.1, "mask_real_images": "on"},
                     "renderer": {"lr": 0.2, "checkpoint": "r"}, "rendering": {"backend": "pyrender"},
                     "export": {"threshold": 0.4}, "cameras": {"view_range": "limited"}}
    pretrain = get_method("iggan-renderer").config_cls
    assert migrate_flat_keys(pretrain, {"camera_radius": 2.5, "mask_real_images": "on", "lr": 0.1}) == {
        "cameras": {"radius": 2.5}, "lr": 0.1}  # real images never reach the renderer's pre-training


def test_a_renderer_pretrained_before_the_nesting_names_its_architecture():
    from unflat.methods.iggan import trained_architecture

    text = (FLAT / "iggan-renderer-tiny.yaml").read_text()
    assert trained_architecture("iggan-renderer", text) == {
        "voxel_resolution": 16, "image_resolution": 16, "renderer.channels_3d": 4, "renderer.channels_2d": 16,
        "renderer.res_blocks_3d": 1, "renderer.res_blocks_2d": 1}
    nested = run_config_text("iggan", get_method("iggan").config("tiny"))
    assert trained_architecture("iggan", nested) == trained_architecture("iggan-renderer", text)

def test_the_migration_moves_renamed_fields_and_drops_fields_that_no_longer_apply():
    tdgp = get_method("3dgp").config_cls
    moved = migrate_flat_keys(tdgp, {"seed": 1, "d_channel_base": 64, "g_lr": 0.1, "camera_radius": 2.5,
                                     "use_depth": False, "distill_teacher": "random", "camera_perturb_deg": 5.0,
                                     "camera_z_dim": 4, "patch_anneal_images": 8})
    assert moved == {"seed": 1, "discriminator": {"channel_base": 64}, "generator": {"lr": 0.1},
                     "cameras": {"radius": 2.5}, "depth": {"enabled": False}, "distillation": {"teacher": "random"},
                     "camera_generator": {"z_dim": 4}, "patches": {"anneal_images": 8}}
    cfg = config_from_dict(tdgp, moved)
    assert cfg.discriminator.channel_base == 64 and cfg.camera_generator.z_dim == 4 and not cfg.depth.enabled
    assert not hasattr(cfg.cameras, "perturb_deg")  # 3dgp's cameras come from its camera generator
    mv = get_method("mvtriplane").config_cls
    assert migrate_flat_keys(mv, {"multiview_views": 2, "camera_perturb_deg": 3.0, "diversity_every": 5}) == {
        "multiview": {"views": 2, "diversity_every": 5}, "cameras": {"perturb_deg": 3.0}}


def test_an_old_flat_progressive_config_and_the_shipped_zoo_model_load_nested():
    spec = get_method("progressive")
    text = (FLAT / "progressive-tiny.yaml").read_text()
    flat = yaml.safe_load(text)
    assert "encoder_channels" in flat and "encoder" not in flat  # the fixture is really flat
    assert config_from_yaml(spec.config_cls, text) == spec.config("tiny")
    assert config_from_dict(spec.config_cls, to_plain(spec.config("tiny"))) == spec.config("tiny")
    import json

    shipped = json.loads((Path(__file__).parents[1] / "src/unflat/zoo/shipped/progressive-6cat-128.json").read_text())
    assert "stage2_start" in shipped["config"]  # stored flat, and it stays so (shipped files are not rewritten)
    cfg = config_from_dict(spec.config_cls, shipped["config"])
    assert (cfg.encoder.max_channels, cfg.template.segments, cfg.schedule.stage2_start, cfg.losses.perceptual_features,
            cfg.discriminator.lr, cfg.arch) == (256, 64, 1_000_000, "pyramid", 2e-4, "normalised")


def test_progressive_flat_names_move_to_their_components():
    progressive = get_method("progressive").config_cls
    moved = migrate_flat_keys(progressive, {"seed": 1, "encoder_channels": 8, "decoder_start": 2, "template_rings": 6,
                                            "d_lr": 0.1, "r1_gamma": 1.0, "render_resolution": 32, "background": 0.5,
                                            "w_iou": 2.0, "stage3_start": 9, "augment_background": 0.3,
                                            "augment_backgrounds": "photos", "augment_object_crop": 0.5, "lr": 0.2})
    assert moved == {"seed": 1, "encoder": {"channels": 8}, "decoder": {"start": 2}, "template": {"rings": 6},
                     "discriminator": {"lr": 0.1, "r1_gamma": 1.0}, "rendering": {"resolution": 32, "background": 0.5},
                     "losses": {"w_iou": 2.0}, "schedule": {"stage3_start": 9},
                     "augmentation": {"background": 0.3, "backgrounds": "photos", "object_crop": 0.5}, "lr": 0.2}


@pytest.mark.parametrize("method", ["mvtriplane", "3dgp", "iggan", "progressive"])
def test_an_old_checkpoint_and_run_config_resume_and_train_again(method: str, request, tmp_path: Path, monkeypatch):
    from unflat.engine import checkpoint as ckpt
    from unflat.runs import resume, train

    sphere_dataset = request.getfixturevalue("multiview_sphere_dataset" if method == "progressive" else "sphere_dataset")

    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))
    spec = get_method(method)
    base = spec.config("tiny")
    base.data, base.device, base.tensorboard = sphere_dataset, "cpu", False
    base.checkpoint_every = 1  # step 1 of the straight run is compared below
    straight, old = tmp_path / "straight", tmp_path / "old"
    train(spec, config_from_dict(spec.config_cls, {**to_plain(base), "out": str(straight), "max_steps": 2}))
    train(spec, config_from_dict(spec.config_cls, {**to_plain(base), "out": str(old), "max_steps": 1}))

    # make `old` a run of the flat era: its config.yaml and its checkpoint's config are the flat file's fields
    flat = yaml.safe_load((FLAT / f"{method}-tiny.yaml").read_text())
    saved = yaml.safe_load((old / "config.yaml").read_text())
    flat |= {"data": str(sphere_dataset), "out": str(old), "device": "cpu", "tensorboard": False, "max_steps": 1}
    if method == "3dgp":
        flat["distill_feature_dim"] = saved["distillation"]["feature_dim"]  # recorded at the start of training
    header = run_config_text(method, base).splitlines()[0]
    (old / "config.yaml").write_text(header + "\n" + yaml.safe_dump(flat, sort_keys=False))
    latest = ckpt.checkpoint_file(old)
    payload = torch.load(latest, weights_only=True)
    payload["config_yaml"] = yaml.safe_dump(flat, sort_keys=False)
    torch.save(payload, latest)

    resume(old, {"max_steps": 2})
    a, b = ckpt.load_checkpoint(straight)["method_state"], ckpt.load_checkpoint(old)["method_state"]
    for net in a["networks"]:
        for key in a["networks"][net]:
            assert torch.equal(a["networks"][net][key], b["networks"][net][key]), (net, key)
    assert a["extra"] == b["extra"]

    # the flat config.yaml trains again with `unflat train --config`, to the same first step
    again = tmp_path / "again"
    assert cli.main(["train", "--config", str(old / "config.yaml"), "--out", str(again), "--max-steps", "1"]) == 0
    c = ckpt.load_checkpoint(again)
    assert "discriminator" in yaml.safe_load((again / "config.yaml").read_text())  # written nested from now on
    one = ckpt.load_checkpoint(ckpt.checkpoint_dir(straight) / "step-00000001.pt")["method_state"]
    for net in one["networks"]:
        for key in one["networks"][net]:
            assert torch.equal(one["networks"][net][key], c["method_state"]["networks"][net][key]), (net, key)


@pytest.mark.parametrize("method, argv, note", [
    ("iggan", ["--dom-weight", "0"], "--dom-weight is now --renderer.dom-weight"),
    ("iggan", ["--no-freeze-renderer"], "--no-freeze-renderer is now --renderer.no-freeze"),
    ("mvtriplane", ["--d-channel-max=64"], "--d-channel-max is now --discriminator.channel-max"),
    ("3dgp", ["--camera-perturb-deg", "3"], "--camera-perturb-deg no longer applies to this method"),
    ("progressive", ["--stage2-start", "5"], "--stage2-start is now --schedule.stage2-start"),
    ("progressive", ["--no-d-conditional"], "--no-d-conditional is now --discriminator.no-conditional"),
])
def test_a_flat_flag_of_old_scripts_is_a_one_line_error_naming_its_new_place(method, argv, note, capsys):
    assert cli.main(["train", method, "--preset", "tiny", *argv]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and note in err and "unrecognized arguments" in err, err
