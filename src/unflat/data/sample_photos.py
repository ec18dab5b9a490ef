"""The photos that scikit-image, scikit-learn and matplotlib ship (whichever are installed): real photos of
objects, people and animals for `unflat demo` and the benchmarks, with no download.

``sample_photos()`` decodes them in memory as ``{"PKG-NAME": uint8 [H,W,3]}``; ``write_sample_photos(out)``
writes them as ``out/PKG-NAME.png``. A package that is not installed, or a data file it does not carry, is
left out and named in ``missing`` (``pip install 'unflat[demo]'`` installs all three).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

SKIMAGE_PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
"""scikit-image photos used (``motorcycle`` is the left view of ``stereo_motorcycle``)."""


def _skimage_loader(name: str) -> Callable[[], np.ndarray]:
    import skimage.data as sk  # noqa: PLC0415

    if name == "motorcycle":
        return lambda: sk.stereo_motorcycle()[0]
    return getattr(sk, name)


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def sample_photos(missing: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """``{"skimage-astronaut": uint8 [H,W,3], ...}`` in a fixed order (scikit-image, scikit-learn, matplotlib).
    ``missing`` (optional) receives ``{source: why}`` for each package or photo that could not be read."""
    missing = {} if missing is None else missing
    found: dict[str, np.ndarray] = {}
    try:
        for name in SKIMAGE_PHOTOS:
            try:
                found[f"skimage-{name}"] = _rgb(_skimage_loader(name)())
            except Exception as exc:  # noqa: BLE001 - a data file this version does not carry
                missing[f"skimage-{name}"] = f"{type(exc).__name__}: {exc}"
    except ImportError as exc:
        missing["skimage"] = f"not installed ({exc})"
    try:
        from sklearn.datasets import load_sample_images  # noqa: PLC0415

        bunch = load_sample_images()
        for filename, image in zip(bunch.filenames, bunch.images):
            found[f"sklearn-{Path(filename).stem}"] = _rgb(image)
    except ImportError as exc:
        missing["sklearn"] = f"not installed ({exc})"
    except Exception as exc:  # noqa: BLE001
        missing["sklearn"] = f"{type(exc).__name__}: {exc}"
    try:
        import matplotlib.cbook as cbook  # noqa: PLC0415
        from PIL import Image  # noqa: PLC0415

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            found["matplotlib-grace_hopper"] = _rgb(np.asarray(Image.open(handle).convert("RGB")))
    except ImportError as exc:
        missing["matplotlib"] = f"not installed ({exc})"
    except Exception as exc:  # noqa: BLE001
        missing["matplotlib-grace_hopper"] = f"{type(exc).__name__}: {exc}"
    return found


def write_sample_photos(out: Path, limit: int | None = None, missing: dict[str, str] | None = None) -> list[Path]:
    """The sample photos (at most ``limit``) -> ``out/PKG-NAME.png``; returns the paths written, in order."""
    from PIL import Image  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in list(sample_photos(missing).items())[:limit]:
        path = out / f"{name}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths
