"""The demo's sample sheet: per row an input, what the network saw, four turntable frames of the GLB and the
ground truth (held-back renders: another view of the shape); then the shipped generator's samples (neural
render, depth, four turntable frames of the exported GLB); last, the sample grids of the demo's own training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unflat.demo.shipped import Generated, HeldOut

HEADER = ["input\n(gen: sample)", "network input\n(gen: depth)", "GLB 0°", "GLB 90°", "GLB 180°", "GLB 270°",
          "truth\n(other view)"]
CELL_SIDE = 96


def _image(path: Path | None) -> np.ndarray | None:
    from PIL import Image

    if path is None or not Path(path).is_file():
        return None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _frames(gif: Path | None) -> list[np.ndarray | None]:
    from unflat.export.sheet import gif_frames

    count = _frame_count(gif)
    return gif_frames(gif, [round(count * q / 4) for q in range(4)]) if gif is not None else [None] * 4


def _frame_count(gif: Path | None) -> int:
    from PIL import Image

    if gif is None or not Path(gif).is_file():
        return 4
    with Image.open(gif) as image:
        return max(int(getattr(image, "n_frames", 1)), 1)


def training_grids(run: Path | None, most: int = len(HEADER)) -> list[Path]:
    """The run's sample grids (run/samples/step-*.png), oldest first, at most ``most`` (evenly picked, last kept)."""
    if run is None or not (run / "samples").is_dir():
        return []
    grids = sorted((run / "samples").glob("step-*.png"))
    if len(grids) > most:
        grids = [grids[round(i * (len(grids) - 1) / (most - 1))] for i in range(most)]
    return grids


def sheet_rows(recon: Path, heldout: list[HeldOut], photos: list[Path], generated: list[Generated],
               training: Path | None = None, method: str = "") -> list[tuple[str, list]]:
    """(label, cells) for every held-back render, photo and generated shape, in that order, then one row of the
    demo's own training run's sample grids (``training``: the run directory)."""
    rows: list[tuple[str, list]] = []
    for r in heldout:
        folder = recon / "heldout"
        rows.append((f"held back\n{r.category}", [_image(r.image), _image(folder / f"{r.name}-input.png"),
                                                  *_frames(folder / f"{r.name}.gif"), _image(r.truth)]))
    for photo in photos:
        folder = recon / "photos"
        rows.append((f"photo\n{photo.stem.replace('-', chr(10), 1)}",
                     [_image(photo), _image(folder / f"{photo.stem}-input.png"), *_frames(folder / f"{photo.stem}.gif"), None]))
    for g in generated:
        rows.append((f"generated\n{g.name}", [_image(g.sample), _image(g.depth), *_frames(g.turntable), None]))
    grids = training_grids(training)
    if grids:
        steps = ", ".join(str(int(p.stem.split("-")[1])) for p in grids)
        rows.append((f"trained here\n{method} samples\nsteps {steps}", [_image(p) for p in grids]))
    return rows


def write_sheet(path: Path, recon: Path, heldout: list[HeldOut], photos: list[Path], generated: list[Generated],
                training: Path | None = None, method: str = "") -> Path:
    """The sheet PNG (unflat.export.sheet layout, CELL_SIDE pixels per cell)."""
    from unflat.export.sheet import make_sheet

    return make_sheet(path, sheet_rows(recon, heldout, photos, generated, training, method), HEADER, side=CELL_SIDE)
