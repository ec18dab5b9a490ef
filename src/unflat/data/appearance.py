"""What a dataset's images look like, for methods that need a particular look (IG-GAN: one grey material).

The manifest says how synth/render data was made (``source.config.material``); for other data (photos,
from-generator) the pixels are measured: a plain grey material under white lights on a white background has
equal R, G and B everywhere, coloured surfaces do not.
"""

from __future__ import annotations

import numpy as np

from unflat.data.format import Dataset

COLOUR_LEVEL = 8.0 / 255.0
"""Mean channel spread (max - min of R, G, B, in [0, 1]) above which images count as coloured: above JPEG and
antialiasing noise on grey renders (exactly 0 for unflat's own grey renders), far below coloured materials."""


def recorded_material(dataset: Dataset) -> str | None:
    """The ``--material`` the dataset was rendered with ("parts", "grey"), or None when it was not recorded."""
    config = (dataset.manifest.get("source") or {}).get("config") or {}
    material = config.get("material") if isinstance(config, dict) else None
    return material if isinstance(material, str) else None


def colourfulness(images: np.ndarray, max_images: int = 64) -> float:
    """Mean spread between the largest and smallest colour channel over up to ``max_images`` evenly spaced
    images of ``images`` (uint8 [N,H,W,3]), in [0, 1]: 0 for grey images."""
    pick = np.unique(np.linspace(0, len(images) - 1, min(max_images, len(images))).astype(int))
    sample = np.asarray(images[pick], dtype=np.float32) / 255.0
    return float((sample.max(axis=-1) - sample.min(axis=-1)).mean())


def is_coloured(dataset: Dataset) -> tuple[bool, str]:
    """(coloured?, how it was decided: the recorded material or the measured spread)."""
    material = recorded_material(dataset)
    if material is not None:
        return material != "grey", f"rendered with --material {material}"
    spread = colourfulness(dataset.images)
    return spread > COLOUR_LEVEL, f"mean colour spread {spread:.3f} (grey images: below {COLOUR_LEVEL:.3f})"
