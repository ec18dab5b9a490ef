"""`unflat dataset synth --material grey`: IG-GAN's plain grey surfaces (its generator makes shape only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unflat.data.commands import SynthConfig, run_synth
from unflat.data.format import open_dataset


def test_grey_material_renders_colourless_shapes(tmp_path: Path) -> None:
    common = dict(category=("chair",), num_shapes=2, resolution=32, workers=1, with_depth=False)
    grey = open_dataset(run_synth(SynthConfig(out=tmp_path / "grey", material="grey", **common)))
    parts = open_dataset(run_synth(SynthConfig(out=tmp_path / "parts", **common)))
    fg = np.asarray(grey.masks) > 250
    rgb = np.asarray(grey.images)[fg].astype(int)
    assert fg.sum() > 50
    assert np.abs(rgb[:, 0] - rgb[:, 1]).max() <= 1 and np.abs(rgb[:, 1] - rgb[:, 2]).max() <= 1
    # the same shapes and cameras: identical silhouettes, but the part colours are gone
    assert np.array_equal(np.asarray(grey.masks), np.asarray(parts.masks))
    colour = np.asarray(parts.images)[fg].astype(int)
    assert np.abs(colour[:, 0] - colour[:, 2]).max() > 10
