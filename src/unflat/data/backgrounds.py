"""Backgrounds for in-the-wild composites: photos that installed packages ship, and procedural textures.

``find_photos()`` lists the sample photos inside installed packages, each optional (nothing is downloaded):

* scikit-image: ``skimage/data/*.png|jpg`` (astronaut, coffee, chelsea, rocket, brick, grass, ...);
* scikit-learn: ``sklearn/datasets/images/*.jpg`` (china, flower);
* matplotlib: ``matplotlib/mpl-data/sample_data/*.png|jpg`` (grace_hopper, ...).

Files are found through ``importlib.util.find_spec`` without importing the packages. Images whose shorter
side is under ``MIN_PHOTO_SIDE`` (icons, tiny GIFs) are left out.

``procedural_background(rng, size)`` needs nothing: linear and radial gradients, fractal value noise coloured
by a two-colour palette, blurred stripes and checkers, and a floor-and-wall split. ``random_background`` picks
one of the requested kinds and, for photos, a random crop (30-100 % of the shorter side, random position and
mirror) resized to ``size``. Every choice comes from the ``rng`` passed in, so a background is a pure function
of the seed and of the photos installed (which the dataset manifest records).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

BackgroundKind = Literal["mixed", "photos", "procedural"]
"""Where wild backgrounds come from: "photos" (packaged photos; procedural when none is installed),
"procedural", or "mixed" (each background is a photo or a procedural texture with equal odds)."""

MIN_PHOTO_SIDE = 128
"""Packaged images with a shorter side below this are not used as backgrounds."""

PHOTO_SOURCES: tuple[tuple[str, str], ...] = (
    ("skimage", "data"),
    ("sklearn", "datasets/images"),
    ("matplotlib", "mpl-data/sample_data"),
)
"""(package, folder inside it) where sample photos ship."""

_SUFFIXES = (".png", ".jpg", ".jpeg")
_WORK_SIDE = 512  # photos are kept in memory at most this large (backgrounds are crops resized down)


@dataclass(frozen=True)
class Photo:
    """One packaged photo: ``name`` is ``package/file`` (what the manifest records)."""

    name: str
    path: str


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def find_photos() -> tuple[Photo, ...]:
    """The usable sample photos of the installed packages, sorted by name (empty when none is installed)."""
    from PIL import Image  # noqa: PLC0415

    photos = []
    for package, folder in PHOTO_SOURCES:
        root = _package_dir(package)
        if root is None or not (root / folder).is_dir():
            continue
        for path in sorted((root / folder).iterdir()):
            if path.suffix.lower() not in _SUFFIXES or not path.is_file():
                continue
            try:
                with Image.open(path) as image:
                    if min(image.size) < MIN_PHOTO_SIDE:
                        continue
            except OSError:  # a broken file in a package is not our problem: skip it
                continue
            photos.append(Photo(f"{package}/{path.name}", str(path)))
    return tuple(sorted(photos, key=lambda p: p.name))


@functools.lru_cache(maxsize=64)
def load_photo(path: str) -> np.ndarray:
    """uint8 [H,W,3] RGB, shorter side at most ``_WORK_SIDE`` (cached per process)."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = _WORK_SIDE / min(image.size)
        if scale < 1:
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
        return np.asarray(image).copy()


def photo_crop(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """A random square crop of ``photo`` (30-100 % of its shorter side, random place, random mirror) -> uint8 [size,size,3]."""
    from PIL import Image  # noqa: PLC0415

    h, w = photo.shape[:2]
    side = max(8, int(round(min(h, w) * rng.uniform(0.3, 1.0))))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = photo[top:top + side, left:left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR))


# ---------------------------------------------------------------------------------------------
# Procedural textures (float [size,size,3] in [0,1] inside, uint8 out)
# ---------------------------------------------------------------------------------------------
def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random colour, not too saturated (backgrounds should look like places, not flags)."""
    grey = rng.uniform(0.1, 0.95)
    return np.clip(grey + rng.normal(0, 0.18, 3), 0, 1)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(size) + 0.5) / size
    return np.meshgrid(t, t, indexing="xy")  # x: columns, y: rows, both in (0,1)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a * (1 - t[..., None]) + b * t[..., None]


def _value_noise(rng: np.random.Generator, size: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0,1]: bilinearly upsampled random grids, halving amplitude per octave."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    base = int(rng.integers(2, 5))
    total = np.zeros((size, size))
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = base * 2**octave
        grid = torch.from_numpy(rng.random((1, 1, cells + 1, cells + 1)))
        up = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=True)[0, 0].numpy()
        total += amplitude * up
        weight += amplitude
        amplitude *= rng.uniform(0.4, 0.6)
    total /= weight
    return (total - total.min()) / max(total.max() - total.min(), 1e-9)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage  # noqa: PLC0415

    return ndimage.gaussian_filter(image, (sigma, sigma, 0)) if sigma > 0 else image


PROCEDURAL = ("linear", "radial", "noise", "stripes", "checker", "floor")
"""The procedural texture families, drawn with equal odds."""


def procedural_background(rng: np.random.Generator, size: int, family: str | None = None) -> np.ndarray:
    """A procedural background uint8 [size,size,3]: ``family`` from ``PROCEDURAL`` (random when None)."""
    family = family or PROCEDURAL[int(rng.integers(len(PROCEDURAL)))]
    x, y = _grid(size)
    a, b = _colour(rng), _colour(rng)
    angle = rng.uniform(0, 2 * np.pi)
    along = x * np.cos(angle) + y * np.sin(angle)
    if family == "linear":
        t = (along - along.min()) / max(np.ptp(along), 1e-9)
        image = _mix(a, b, t)
    elif family == "radial":
        cx, cy = rng.uniform(0.2, 0.8, 2)
        t = np.clip(np.hypot(x - cx, y - cy) / rng.uniform(0.5, 1.0), 0, 1)
        image = _mix(a, b, t)
    elif family == "noise":
        image = _mix(a, b, _value_noise(rng, size))
    elif family == "stripes":
        period = rng.uniform(0.05, 0.3)
        image = _blur(_mix(a, b, (np.sin(2 * np.pi * along / period) > 0).astype(float)), size * rng.uniform(0.0, 0.02))
    elif family == "checker":
        period = rng.uniform(0.06, 0.25)
        across = -x * np.sin(angle) + y * np.cos(angle)
        cells = (np.floor(along / period) + np.floor(across / period)) % 2
        image = _blur(_mix(a, b, cells), size * rng.uniform(0.0, 0.02))
    elif family == "floor":
        horizon = rng.uniform(0.45, 0.8)  # a wall above, a floor below, each with a soft gradient
        wall = _mix(a, a * 0.7, np.clip(y / horizon, 0, 1))
        floor = _mix(b * 0.8, b, np.clip((y - horizon) / (1 - horizon), 0, 1))
        image = np.where((y < horizon)[..., None], wall, floor)
        image = _blur(image, size * 0.004)
    else:
        raise ValueError(f"unknown procedural background {family!r}; choose from {', '.join(PROCEDURAL)}")
    grain = rng.normal(0, rng.uniform(0.0, 0.03), image.shape)  # a little sensor noise, as in photos
    return np.clip(np.rint((image + grain) * 255), 0, 255).astype(np.uint8)


def random_background(rng: np.random.Generator, size: int, kind: BackgroundKind,
                      photos: tuple[Photo, ...]) -> tuple[np.ndarray, str]:
    """(uint8 [size,size,3], what it is: "photo:<name>" or "procedural:<family>")."""
    use_photo = bool(photos) and (kind == "photos" or (kind == "mixed" and rng.random() < 0.5))
    if use_photo:
        photo = photos[int(rng.integers(len(photos)))]
        return photo_crop(rng, load_photo(photo.path), size), f"photo:{photo.name}"
    family = PROCEDURAL[int(rng.integers(len(PROCEDURAL)))]
    return procedural_background(rng, size, family), f"procedural:{family}"
