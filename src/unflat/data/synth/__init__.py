"""Embedded procedural object categories with exact ground-truth meshes.

``make_shape(category, seed)`` returns a deterministic, varied, plausible instance of a category
(chair, table, sofa, mug, car, lamp) as a ``SynthShape``: a vertex-coloured trimesh normalised to
the unit sphere (hence inside [-1,1]^3), +Y up, front facing +Z, plus its parts and parameters.

Every shape is a union of watertight parts (each part is a closed solid; parts may overlap and
are not boolean-merged), so the combined mesh is generally not watertight itself, but it is a
valid boundary of the union for rendering, point sampling and winding-number/inside tests.
"""

from __future__ import annotations

import zlib
from typing import Callable

import numpy as np

from unflat.data.synth import car, chair, lamp, mug, sofa, table
from unflat.data.synth.parts import Part, SynthShape, assemble

Generator = Callable[[np.random.Generator], tuple[list[Part], dict]]

CATEGORIES: dict[str, Generator] = {
    "chair": chair.generate,
    "table": table.generate,
    "sofa": sofa.generate,
    "mug": mug.generate,
    "car": car.generate,
    "lamp": lamp.generate,
}
"""Registry: category name -> parametric generator (rng -> parts, params)."""


def make_shape(category: str, seed: int) -> SynthShape:
    """A deterministic instance of ``category`` for ``seed`` (same inputs -> identical mesh)."""
    try:
        generate = CATEGORIES[category]
    except KeyError:
        raise ValueError(f"unknown category {category!r}; choose from {', '.join(CATEGORIES)}") from None
    # Seed with the category too, so chair 0 and table 0 use unrelated random streams.
    rng = np.random.default_rng([int(seed), zlib.crc32(category.encode())])
    parts, params = generate(rng)
    return assemble(category, int(seed), parts, params)


__all__ = ["CATEGORIES", "Part", "SynthShape", "make_shape"]
