"""`unflat reconstruct --segmenter`: auto takes IS-Net when installed, a missing IS-Net is a one-line error, and
`--masks` always wins (no segmentation at all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_segment import planted_scene
from test_segment_isnet import install_tiny_model, needs_ort

from unflat import cli


@pytest.fixture(scope="module")
def progressive_run(tmp_path_factory) -> Path:
    """A 1-step tiny progressive run (its meshes are not the point; the segmentation in front of it is)."""
    from conftest import train_tiny_runs, write_sphere_dataset

    root = tmp_path_factory.mktemp("rec")
    data = write_sphere_dataset(root / "multi", num_shapes=6, views_per_shape=4)
    train_tiny_runs(root, {"run": ("progressive", data)})
    return root / "run"


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(planted_scene(96)[0]).save(path)
    return path


def reconstruct(capsys, run: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["reconstruct", str(run), *args, "--no-turntable", "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_isnet_without_its_weights_is_a_one_line_error(progressive_run, photo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNFLAT_WEIGHTS_DIR", str(tmp_path / "empty"))
    code, _, err = reconstruct(capsys, progressive_run, str(photo), "--segmenter", "isnet", "--out", str(tmp_path / "o"))
    assert code == 1 and len(err.splitlines()) == 1 and "setup.sh segment" in err
    code, out, _ = reconstruct(capsys, progressive_run, str(photo), "--out", str(tmp_path / "o2"))
    assert code == 0 and "segmenting photos with isnet" not in out  # auto: the weight-free fallback
    assert (tmp_path / "o2" / "photo.glb").is_file()


@needs_ort
def test_auto_uses_an_installed_isnet_and_masks_still_win(progressive_run, photo, tmp_path, monkeypatch, capsys):
    model = install_tiny_model(tmp_path, monkeypatch)
    code, out, _ = reconstruct(capsys, progressive_run, str(photo), "--out", str(tmp_path / "o"))
    assert code == 0 and f"segmenting photos with isnet ({model})" in out
    # the input crop follows the mask: an all-white mask of the whole photo vs the segmented object
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((96, 96), 255, np.uint8)).save(mask)
    code, out, _ = reconstruct(capsys, progressive_run, str(photo), "--masks", str(mask), "--out", str(tmp_path / "m"))
    assert code == 0 and "segmenting" not in out
    segmented = np.asarray(Image.open(tmp_path / "o" / "photo-input.png"), np.float32)
    given = np.asarray(Image.open(tmp_path / "m" / "photo-input.png"), np.float32)
    assert np.abs(segmented - given).mean() > 5  # the user's mask, not IS-Net's, made the input
