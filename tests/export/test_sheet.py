"""unflat.export.sheet: cells fitted into squares with their aspect kept, the sheet's size, GIF frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from unflat.export.sheet import fit_cell, gif_frames, make_sheet, sheet_size


def test_a_wide_image_is_fitted_on_white_and_none_is_a_grey_cell() -> None:
    wide = np.zeros((10, 40, 3), np.uint8)
    cell = fit_cell(wide, 20)
    assert cell.shape == (20, 20, 3)
    assert (cell[:7] == 255).all() and (cell[8:12] == 0).all() and (cell[13:] == 255).all()  # 5 rows of image, centred
    assert (fit_cell(None, 8) == 235).all()


def test_sheet_size_and_gif_frames(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), (v, 0, 0)) for v in (0, 100, 200)]
    gif = tmp_path / "t.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    picked = gif_frames(gif, [1, 5])
    assert picked[0][0, 0, 0] == 100 and picked[1][0, 0, 0] == 200  # 5 % 3 frames = the third
    assert gif_frames(tmp_path / "missing.gif", [0, 1]) == [None, None]
    path = make_sheet(tmp_path / "s.png", [("a", [picked[0], None]), ("b", [picked[1]])], ["x", "y", "z"], side=16)
    assert Image.open(path).size == sheet_size(2, 3, 16)
