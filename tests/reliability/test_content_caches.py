"""Caches are keyed on the bytes they depend on, not on the hashes a dataset's manifest records.

Before: after `images.npy` was edited, `unflat evaluate` reused the cached reference statistics
(`from_cache: true`, a wrong FID), and 3dgp's ground-truth depth cache ignored `depth.npy`, so two datasets
with the same images and different depth shared one entry. Each test edits a file in place (same size, so a
cheap size check would not see it), after making it look old so the digest memo is in play."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_sphere_dataset
from unflat import cli
from unflat.cache import file_digest
from unflat.data.depth_cache import dataset_fingerprint, ground_truth_depth
from unflat.data.format import open_dataset


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))


def _age(path: Path, seconds: float = 3600) -> None:
    """Make a file look written an hour ago, so file_digest may memoise its hash."""
    old = time.time() - seconds
    os.utime(path, (old, old))


def _edit_in_place(path: Path, fn) -> None:
    array = np.load(path, mmap_mode="r+")
    fn(array)
    array.flush()
    del array


def test_file_digest_sees_an_in_place_edit_of_an_old_file(tmp_path: Path) -> None:
    data = write_sphere_dataset(tmp_path / "data", num_shapes=2)
    images = data / "images.npy"
    _age(images)
    first = file_digest(images)
    assert file_digest(images) == first  # memoised: same answer
    assert list((tmp_path / "cache" / "file-digests").glob("*.json"))
    stat = images.stat()
    _edit_in_place(images, lambda a: a.__setitem__((0, 0, 0, 0), a[0, 0, 0, 0] ^ 1))
    os.utime(images, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime put back (ctime moves)
    assert images.stat().st_size == stat.st_size
    assert file_digest(images) != first


def test_reference_statistics_are_not_reused_after_images_npy_is_edited(tmp_path: Path) -> None:
    """The path `unflat evaluate` takes: cached_reference_stats keyed by evaluate.images_hash(dataset)."""
    import torch

    from unflat.evaluate import images_hash
    from unflat.metrics.backbones import DomainBackboneExtractor
    from unflat.metrics.reference_cache import cached_reference_stats
    from unflat.nets.domain_backbone import DomainBackbone, DomainBackboneConfig

    torch.manual_seed(0)
    extractor = DomainBackboneExtractor(DomainBackbone(DomainBackboneConfig(resolution=16, widths=(8, 16), num_classes=2)))
    data = write_sphere_dataset(tmp_path / "data", num_shapes=8)
    _age(data / "images.npy")
    recorded = json.loads((data / "manifest.json").read_text())["files"]["images.npy"]["sha256"]

    def reference():
        dataset = open_dataset(data)
        return cached_reference_stats(dataset.images, extractor, tmp_path / "ref", max_features=8,
                                      data_hash=images_hash(dataset))

    first, again = reference(), reference()
    assert not first.from_cache and again.from_cache and first.data_hash == recorded
    _edit_in_place(data / "images.npy", lambda a: a.__setitem__(slice(None), 255 - np.asarray(a)))
    edited = reference()
    assert not edited.from_cache and edited.data_hash != recorded
    assert not torch.equal(edited.stats.mean, first.stats.mean)
    # the manifest still records the old hash: only the content changed
    assert json.loads((data / "manifest.json").read_text())["files"]["images.npy"]["sha256"] == recorded


def test_ground_truth_depth_cache_follows_depth_npy(tmp_path: Path) -> None:
    a = write_sphere_dataset(tmp_path / "a", num_shapes=4)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for path in (a / "depth.npy", b / "depth.npy", a / "images.npy", b / "images.npy"):
        _age(path)
    _edit_in_place(b / "depth.npy", lambda d: d.__setitem__(slice(None), np.asarray(d) * 1.5))
    # same images: the image-keyed caches (estimated depth, features) may share; the ground-truth depth may not
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    depth_a, depth_b = ground_truth_depth(a), ground_truth_depth(b)
    assert not np.array_equal(np.asarray(depth_a), np.asarray(depth_b))
    assert len(list((tmp_path / "cache" / "depth").glob("*.npy"))) == 2
    # edit a's depth in place after it was cached: a new entry, computed from the new file
    before = np.asarray(ground_truth_depth(a)).copy()
    _edit_in_place(a / "depth.npy", lambda d: d.__setitem__(slice(None), np.asarray(d) * 1.5))
    assert np.array_equal(np.asarray(ground_truth_depth(a)), np.asarray(ground_truth_depth(b)))
    assert not np.array_equal(np.asarray(ground_truth_depth(a)), before)


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """A 24-sphere dataset, a tiny backbone trained on it and a 1-step mvtriplane run, through the CLI."""
    root = tmp_path_factory.mktemp("eval-cache")
    data = write_sphere_dataset(root / "data", num_shapes=24)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNFLAT_CACHE_DIR", str(root / "cache"))
        assert cli.main(["train", "backbone", "--preset", "tiny", "--data", str(data), "--out", str(root / "backbone"),
                         "--no-tensorboard", "--device", "cpu"]) == 0
        assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(data), "--out", str(root / "mv"),
                         "--max-steps", "1", "--no-tensorboard", "--device", "cpu"]) == 0
    return root, data


def test_unflat_evaluate_recomputes_reference_after_images_npy_is_edited(evaluated_run, tmp_path: Path) -> None:
    """The issue's reproduction: FID 0.2277 from stale statistics, 0.3522 recomputed."""
    root, data = evaluated_run
    out = tmp_path / "metrics.json"
    args = ["evaluate", str(root / "mv"), "--data", str(data), "--metrics", "fid", "--num-samples", "24",
            "--batch-size", "24", "--cache-dir", str(tmp_path / "ref"), "--out", str(out), "--device", "cpu"]
    _age(data / "images.npy")
    assert cli.main(args) == 0
    first = json.loads(out.read_text())
    assert cli.main(args) == 0
    assert json.loads(out.read_text())["reference"]["from_cache"] is True
    _edit_in_place(data / "images.npy", lambda a: a.__setitem__(slice(None), 255 - np.asarray(a)))
    assert cli.main(args) == 0
    edited = json.loads(out.read_text())
    assert edited["reference"]["from_cache"] is False
    assert edited["data"]["images_sha256"] != first["data"]["images_sha256"]
    assert edited["images"]["fid"] != first["images"]["fid"]
