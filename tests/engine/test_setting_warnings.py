"""Settings that cannot do what the user asked are said once, in one line, before work starts: schedules longer
than --max-steps (IG-GAN pre-training, progressive stages, tri-plane fade-ins), data that does not fit IG-GAN
(colour, several classes), an evaluation backbone validated on too few held-out images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import write_sphere_dataset
from unflat.config import replace_fields
from unflat.data.format import open_dataset
from unflat.methods.base import TrainContext

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = TrainContext(torch.device("cpu"))


def _warnings(method_cls, cfg, data: Path) -> list[str]:
    dataset = open_dataset(data)
    return method_cls(cfg, dataset.info, CPU).setting_warnings(dataset)


@pytest.fixture
def grey_one_class(tmp_path: Path) -> Path:
    return write_sphere_dataset(tmp_path / "grey", num_classes=1, grey=True)


def test_iggan_pretraining_longer_than_the_run_is_said(grey_one_class: Path) -> None:
    from unflat.methods.iggan import IGGAN, iggan_tiny

    cfg = replace(iggan_tiny(), data=grey_one_class)
    assert _warnings(IGGAN, replace_fields(cfg, {"renderer.pretrain_steps": 1}), grey_one_class) == []  # G and D train from step 1
    notes = _warnings(IGGAN, replace_fields(cfg, {"renderer.pretrain_steps": cfg.max_steps}), grey_one_class)
    assert len(notes) == 1 and "G and D never train" in notes[0] and f"--max-steps {cfg.max_steps}" in notes[0]


def test_iggan_says_coloured_and_multi_class_data_do_not_fit(sphere_dataset: Path, grey_one_class: Path) -> None:
    from unflat.methods.iggan import IGGAN, iggan_tiny

    notes = _warnings(IGGAN, replace(iggan_tiny(), data=sphere_dataset), sphere_dataset)
    assert len(notes) == 2
    assert "2 classes (class0, class1)" in notes[0] and "one category" in notes[0]
    assert "is coloured (mean colour spread" in notes[1] and "--material grey" in notes[1]
    assert _warnings(IGGAN, replace(iggan_tiny(), data=grey_one_class), grey_one_class) == []


def test_the_recorded_material_decides_before_the_pixels(grey_one_class: Path) -> None:
    import json

    from unflat.data.appearance import is_coloured

    manifest = json.loads((grey_one_class / "manifest.json").read_text())
    manifest["source"] = {"command": "synth", "config": {"material": "parts"}}
    (grey_one_class / "manifest.json").write_text(json.dumps(manifest))
    assert is_coloured(open_dataset(grey_one_class)) == (True, "rendered with --material parts")


def test_progressive_stages_that_never_start_are_said(multiview_sphere_dataset: Path) -> None:
    from unflat.methods.progressive import Progressive, tiny

    cfg = replace(tiny(), data=multiview_sphere_dataset)  # stages at 2 and 4 of 6 steps
    assert _warnings(Progressive, cfg, multiview_sphere_dataset) == []
    stage3 = _warnings(Progressive, replace(cfg, max_steps=cfg.schedule.stage3_start), multiview_sphere_dataset)
    assert len(stage3) == 1 and "stage III" in stage3[0]
    stage1 = _warnings(Progressive, replace(cfg, max_steps=cfg.schedule.stage2_start), multiview_sphere_dataset)
    assert len(stage1) == 1 and "never leaves stage I" in stage1[0]


def test_triplane_fade_ins_longer_than_the_run_are_said(sphere_dataset: Path) -> None:
    from unflat.methods.mvtriplane import MVTriplane, tiny

    cfg = replace(tiny(), data=sphere_dataset, device="cpu")
    images = cfg.max_steps * cfg.batch_size
    assert _warnings(MVTriplane, replace_fields(cfg, {"discriminator.blur_fade_images": images, "rendering.neural_resolution_final": 16, "rendering.neural_fade_images": images}), sphere_dataset) == []
    notes = _warnings(MVTriplane, replace_fields(cfg, {"discriminator.blur_sigma": 2.0, "discriminator.blur_fade_images": 2 * images, "rendering.neural_resolution_final": 16, "rendering.neural_fade_images": 2 * images}), sphere_dataset)
    assert len(notes) == 2 and "rendering resolution ends at 12, not 16" in notes[0]
    assert "still blurs by 1 px" in notes[1]


def test_the_engine_says_each_warning_once_before_the_first_step(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    from unflat.runs import resume, train
    from unflat.methods.iggan import SPEC, iggan_tiny

    cfg = replace_fields(iggan_tiny(), {"data": sphere_dataset, "out": tmp_path / "run", "renderer.pretrain_steps": 2,
                                        "max_steps": 2})
    train(SPEC, cfg)
    err = capsys.readouterr().err
    lines = err.splitlines()
    warned = [i for i, line in enumerate(lines) if line.startswith("warning: ")]
    first_step = next(i for i, line in enumerate(lines) if line.startswith("step 1/2"))
    assert len(warned) == 3 and max(warned) < first_step, err
    log = (tmp_path / "run" / "run.log").read_text()
    assert log.count("WARNING --renderer.pretrain-steps 2 >= --max-steps 2") == 1
    # its samples are labelled as pre-training (a white grid of an untrained G, not a failed run)
    import imageio.v3 as iio

    grid = iio.imread(tmp_path / "run" / "samples" / "step-00000002.png")
    side = 4 * (cfg.image_resolution + 2) + 2  # 16 samples, 4 x 4 with 2 px padding
    assert grid.shape[1] == side and grid.shape[0] > side and grid[: grid.shape[0] - side].min() < 100  # dark text
    resume(tmp_path / "run")  # finished: no step to warn about; says how to continue
    err = capsys.readouterr().err
    assert "warning: " not in err
    assert f"unflat train --resume {tmp_path / 'run'} --max-steps {2 * cfg.max_steps}" in err
