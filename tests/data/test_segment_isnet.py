"""IS-Net segmentation: weights reassembled from an npm-style chunked package (checked chunk by chunk),
verified again at load, the ``auto`` choice, and the real model on scikit-image's photos when it is installed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from onnx_tiny import conv_sigmoid_model
from test_segment import iou, planted_scene

from unflat.data import isnet_weights
from unflat.data.isnet_weights import IsnetWeightsError, check, install, reassemble
from unflat.data.segment import cv2_available, resolve_method, segment_object
from unflat.data.segment_isnet import find_model, isnet_available, load_session, onnxruntime_available

needs_ort = pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime is not installed (unflat[segment])")


def write_package(root: Path, models: dict[str, bytes], chunk: int = 1000) -> Path:
    """An unpacked package as npm's @imgly/background-removal-data lays it out: dist/<sha256> chunks + resources.json."""
    dist = root / "package" / "dist"
    dist.mkdir(parents=True)
    index = {}
    for name, data in models.items():
        chunks = []
        for start in range(0, len(data), chunk):
            piece = data[start:start + chunk]
            digest = hashlib.sha256(piece).hexdigest()
            (dist / digest).write_bytes(piece)
            chunks.append({"hash": digest, "offsets": [start, start + len(piece)]})
        index[f"/models/{name}"] = {"chunks": chunks, "size": len(data), "mime": "application/octet-steam"}
    (dist / "resources.json").write_text(json.dumps(index))
    (root / "package" / "package.json").write_text(json.dumps({"name": isnet_weights.PACKAGE, "version": "9.9.9"}))
    return root / "package"


def test_reassembly_gives_the_model_bytes_and_install_records_their_hash(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 4321, dtype=np.uint8).tobytes()  # 5 chunks, the last one short
    package = write_package(tmp_path, {"small": data, "medium": data[::-1]})
    assert reassemble(package, "small") == data and reassemble(package, "medium") == data[::-1]
    target = install(package, "small", tmp_path / "w")
    assert target.read_bytes() == data
    record = check(target)
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["size"] == len(data)
    assert record["source"] == f"npm:{isnet_weights.PACKAGE}@9.9.9"
    assert "AGPL-3.0" in record["licences"]["package"] and "Apache-2.0" in record["licences"]["model"]


def test_a_corrupted_or_missing_chunk_is_refused_and_nothing_is_written(tmp_path):
    data = bytes(range(256)) * 10
    package = write_package(tmp_path, {"small": data})
    index = json.loads((package / "dist" / "resources.json").read_text())
    second = package / "dist" / index["/models/small"]["chunks"][1]["hash"]
    second.write_bytes(b"\x00" + second.read_bytes()[1:])
    with pytest.raises(IsnetWeightsError, match="chunk 1 .*sha256"):
        install(package, "small", tmp_path / "w")
    assert not (tmp_path / "w" / "small.onnx").exists()
    second.unlink()
    with pytest.raises(IsnetWeightsError, match="chunk 1 .*missing"):
        reassemble(package, "small")
    with pytest.raises(IsnetWeightsError, match="no model 'large' .*small"):
        reassemble(package, "large")


def test_a_size_that_does_not_add_up_is_refused(tmp_path):
    package = write_package(tmp_path, {"small": b"x" * 2500})
    index_path = package / "dist" / "resources.json"
    index = json.loads(index_path.read_text())
    index["/models/small"]["size"] += 1
    index_path.write_text(json.dumps(index))
    with pytest.raises(IsnetWeightsError, match="2500 bytes"):
        reassemble(package, "small")


def test_the_command_line_installs_and_checks(tmp_path, capsys):
    package = write_package(tmp_path, {"small": b"abc" * 700})
    assert isnet_weights.main(["install", str(package), "--dest", str(tmp_path / "w")]) == 0
    assert str(tmp_path / "w" / "small.onnx") in capsys.readouterr().out
    assert isnet_weights.main(["check", "--dest", str(tmp_path / "w")]) == 0
    (tmp_path / "w" / "small.onnx").write_bytes(b"abc" * 699 + b"abd")
    assert isnet_weights.main(["check", "--dest", str(tmp_path / "w")]) == 1
    assert "does not match the sha256" in capsys.readouterr().err


def test_auto_falls_back_to_a_weight_free_method_without_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("UNFLAT_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("UNFLAT_ISNET_MODEL", raising=False)
    assert find_model() is None and not isnet_available()
    assert resolve_method("auto") == ("grabcut" if cv2_available() else "colour")
    img, truth = planted_scene()
    assert iou(segment_object(img) > 0.5, truth) > 0.8  # the fallback still segments


def install_tiny_model(tmp_path: Path, monkeypatch) -> Path:
    """A 1x1-conv 'IS-Net' (red minus blue, at 64x64) installed the way setup does, under UNFLAT_WEIGHTS_DIR."""
    package = write_package(tmp_path / "npm", {"small": conv_sigmoid_model([20.0, 0.0, -20.0], -2.0, 64)})
    monkeypatch.setenv("UNFLAT_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("UNFLAT_ISNET_MODEL", raising=False)
    return install(package, "small")


@needs_ort
def test_auto_picks_isnet_when_a_model_is_installed_and_uses_its_output(tmp_path, monkeypatch):
    target = install_tiny_model(tmp_path, monkeypatch)
    assert find_model() == target and resolve_method("auto") == "isnet"
    img, truth = planted_scene()  # an orange object: red minus blue is its mask
    mask = segment_object(img)
    assert mask.shape == truth.shape and mask.dtype == np.float32
    assert iou(mask > 0.5, truth) > 0.8
    padded = np.full((300, 300, 3), 255, np.uint8)
    padded[30:270, 30:270] = img
    framed = segment_object(padded, content=(30, 30, 270, 270))
    assert framed[:30].sum() == 0 and iou(framed[30:270, 30:270] > 0.5, truth) > 0.8


@needs_ort
def test_a_model_changed_after_install_is_refused_at_load(tmp_path, monkeypatch):
    target = install_tiny_model(tmp_path, monkeypatch)
    target.write_bytes(conv_sigmoid_model([20.0, 0.0, -20.0], -1.0, 64))  # valid ONNX, other weights
    with pytest.raises(IsnetWeightsError, match="does not match the sha256"):
        load_session(target)


# ---- the real model, when `bash scripts/setup.sh segment` installed it ------------------------------------------
# Hand-drawn boxes (top, left, bottom, right) around each photo's subject, read off the photos.
SUBJECT_BOXES = {
    "coffee": (10, 70, 395, 485),  # cup, saucer and spoon; not the table
    "astronaut": (10, 15, 512, 512),  # the astronaut with her helmet; not the flag or the shuttle model
    "chelsea": (0, 0, 300, 390),  # the cat, which fills the frame but for the wall on the right
}


def box_mask(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[box[0]:box[2], box[1]:box[3]] = True
    return mask


@pytest.mark.skipif(not isnet_available(), reason="IS-Net weights not installed (bash scripts/setup.sh segment)")
@pytest.mark.parametrize("name", sorted(SUBJECT_BOXES))
def test_the_real_model_covers_the_subject_of_a_photo(name):
    data = pytest.importorskip("skimage.data")
    rgb = np.asarray(getattr(data, name)())[..., :3].astype(np.uint8)
    box = box_mask(rgb.shape[:2], SUBJECT_BOXES[name])
    start = time.perf_counter()
    mask = segment_object(rgb, method="isnet") > 0.5
    seconds = time.perf_counter() - start
    fallback = segment_object(rgb, method="grabcut" if cv2_available() else "colour") > 0.5
    inside = (mask & box).sum() / max(mask.sum(), 1)
    print(f"{name}: IS-Net box IoU {iou(mask, box):.2f} ({inside:.0%} inside, {seconds:.1f} s); "
          f"fallback box IoU {iou(fallback, box):.2f}")
    assert inside > 0.95  # nothing of the background outside the subject's box
    assert iou(mask, box) > 0.5  # and most of the box (a box is not the subject's outline)


# ---- scripts/install_isnet.sh (what `bash scripts/setup.sh segment` runs), with a stand-in npm ------------------
REPO = Path(__file__).resolve().parents[2]


def run_installer(tmp_path: Path, path_dirs: list[Path]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.pathsep.join(map(str, path_dirs)), PYTHONPATH=str(REPO / "src"),
               UNFLAT_WEIGHTS_DIR=str(tmp_path / "weights"), TMPDIR=str(tmp_path))
    env.pop("UNFLAT_ISNET_MODEL", None)
    return subprocess.run([shutil.which("bash"), str(REPO / "scripts" / "install_isnet.sh"), sys.executable],
                          capture_output=True, text=True, env=env, timeout=120)


def fake_npm(tmp_path: Path, tgz: Path | None) -> Path:
    """A directory with an `npm` that logs its arguments and, for `pack`, drops ``tgz`` in the current folder
    (or fails like npm without network when tgz is None)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    action = f'cp "{tgz}" .' if tgz else 'echo "npm error code ENOTFOUND request to https://registry.npmjs.org failed" >&2; exit 1'
    (bin_dir / "npm").write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/npm-calls"\n{action}\n')
    (bin_dir / "npm").chmod(0o755)
    return bin_dir


def test_the_installer_packs_reassembles_once_and_then_only_checks(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    package = write_package(tmp_path / "src", {"small": data})
    tgz = tmp_path / "imgly-background-removal-data-1.4.5.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(package, arcname="package")
    tools = [fake_npm(tmp_path, tgz), Path(shutil.which("tar")).parent, Path(shutil.which("mktemp")).parent]
    first = run_installer(tmp_path, tools)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "weights" / "isnet" / "small.onnx").read_bytes() == data
    assert (tmp_path / "npm-calls").read_text().split() == ["pack", "--silent", f"{isnet_weights.PACKAGE}@{isnet_weights.VERSION}"]
    assert not list(tmp_path.glob("unflat-isnet.*"))  # the temporary folder is gone
    second = run_installer(tmp_path, tools)
    assert second.returncode == 0 and "small.onnx" in second.stdout
    assert len((tmp_path / "npm-calls").read_text().splitlines()) == 1  # nothing fetched again


def test_the_installer_fails_in_one_line_without_npm_or_network(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    missing = run_installer(tmp_path, [empty])
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1 and "npm not found" in missing.stderr
    offline = run_installer(tmp_path, [fake_npm(tmp_path, None), Path(shutil.which("mktemp")).parent])
    assert offline.returncode == 1 and len(offline.stderr.strip().splitlines()) == 1 and "ENOTFOUND" in offline.stderr
    assert not (tmp_path / "weights" / "isnet" / "small.onnx").exists()
