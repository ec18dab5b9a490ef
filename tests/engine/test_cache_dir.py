"""One cache directory for every cache unflat keeps (depth, distillation targets, backbones, FID statistics)."""

from __future__ import annotations

from pathlib import Path

from unflat.cache import cache_root
from unflat.data.depth_cache import cache_path
from unflat.evaluate import default_cache_dir


def test_cache_root_precedence(monkeypatch, tmp_path):
    for name in ("UNFLAT_CACHE_DIR", "UNFLAT_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == Path(tmp_path / "home" / ".cache" / "unflat")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "unflat"
    monkeypatch.setenv("UNFLAT_CACHE", str(tmp_path / "old-name"))
    assert cache_root() == tmp_path / "old-name"
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "new-name"))
    assert cache_root() == tmp_path / "new-name"


def test_depth_and_reference_caches_live_under_the_one_root(monkeypatch, tmp_path, sphere_dataset):
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache" / "reference"
    depth = cache_path(sphere_dataset, "estimator-abc", "depth")
    assert depth.parent == tmp_path / "cache" / "depth"
