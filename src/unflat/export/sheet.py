"""Sample sheets: a grid of image cells with a label column and a header row, written as one PNG.

``make_sheet(path, rows, header)`` lays out ``rows`` of ``(label, cells)`` (uint8 images of any size, fitted
into square cells, or None for an empty grey cell); ``gif_frames(path, picks)`` takes frames of a turntable
GIF for the cells. Used by `unflat demo` and the benchmarks' sheets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

LABEL_WIDTH = 150
HEADER_HEIGHT = 34
GAP = 2


def fit_cell(image: np.ndarray | None, side: int) -> np.ndarray:
    """uint8 [H,W,>=3] (or None: a grey cell) -> uint8 [side,side,3], aspect kept, on white."""
    from PIL import Image  # noqa: PLC0415

    if image is None:
        return np.full((side, side, 3), 235, np.uint8)
    image = np.ascontiguousarray(np.asarray(image)[..., :3])
    h, w = image.shape[:2]
    s = side / max(h, w)
    small = np.asarray(Image.fromarray(image).resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS))
    canvas = np.full((side, side, 3), 255, np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def gif_frames(path: Path, picks: Sequence[int]) -> list[np.ndarray | None]:
    """Frames ``picks`` (modulo the frame count) of an animated GIF as uint8 [H,W,3]; Nones when it is missing."""
    from PIL import Image, ImageSequence  # noqa: PLC0415

    if not Path(path).is_file():
        return [None] * len(picks)
    with Image.open(path) as gif:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    return [frames[p % len(frames)] if frames else None for p in picks]


def sheet_size(rows: int, columns: int, side: int) -> tuple[int, int]:
    """(width, height) in pixels of a sheet of ``rows`` x ``columns`` cells of ``side``."""
    return LABEL_WIDTH + columns * (side + GAP), HEADER_HEIGHT + rows * (side + GAP)


def make_sheet(path: Path, rows: Sequence[tuple[str, Sequence[np.ndarray | None]]], header: Sequence[str],
               side: int = 112) -> Path:
    """rows: (label, cells) with cells uint8 images or None; written with a text label column and a header."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    columns = max([len(header)] + [len(cells) for _, cells in rows])
    sheet = Image.new("RGB", sheet_size(len(rows), columns, side), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, text in enumerate(header):
        draw.multiline_text((LABEL_WIDTH + c * (side + GAP) + 3, 2), text, fill=(0, 0, 0), spacing=1)
    for r, (label, cells) in enumerate(rows):
        y = HEADER_HEIGHT + r * (side + GAP)
        draw.multiline_text((4, y + side // 2 - 12), label, fill=(0, 0, 0), spacing=1)
        for c, cell in enumerate(cells):
            sheet.paste(Image.fromarray(fit_cell(cell, side)), (LABEL_WIDTH + c * (side + GAP), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path
