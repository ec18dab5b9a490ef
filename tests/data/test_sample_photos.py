"""unflat.data.sample_photos: the photos installed packages ship, decoded as RGB, and a missing package named."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unflat.data.sample_photos import sample_photos, write_sample_photos

pytest.importorskip("skimage")


def test_scikit_image_photos_come_back_as_rgb_uint8_and_are_written_in_order(tmp_path: Path) -> None:
    photos = sample_photos()
    names = list(photos)
    assert names[:2] == ["skimage-astronaut", "skimage-chelsea"]
    assert all(image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 for image in photos.values())
    assert photos["skimage-astronaut"].shape == (512, 512, 3)
    paths = write_sample_photos(tmp_path / "photos", limit=2)
    assert [p.name for p in paths] == ["skimage-astronaut.png", "skimage-chelsea.png"]
    assert np.array_equal(np.asarray(Image.open(paths[1])), photos["skimage-chelsea"])


def test_a_package_that_is_not_installed_is_named_in_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn -> ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    missing: dict[str, str] = {}
    photos = sample_photos(missing)
    assert "sklearn" in missing and "not installed" in missing["sklearn"]
    assert not any(name.startswith("sklearn-") for name in photos) and "skimage-astronaut" in photos
