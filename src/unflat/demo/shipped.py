"""The default `unflat demo`: the shipped models on real photos, held-back renders and new samples.

1. photos: the photos scikit-image / scikit-learn / matplotlib ship (unflat.data.sample_photos);
2. held-back renders: one embedded shape per category, synth seed 1000 (the shipped models saw seed 0), with
   their masks and a second view as ground truth;
3. ``unflat reconstruct --model progressive-6cat-128``: a textured GLB + turntable per image;
4. the shipped generator ``mvtriplane-6cat-64`` (as ``unflat generate`` / ``unflat export --model``): one sample
   per class (neural render, depth, GLB) + a turntable of the GLB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from unflat.demo.config import DemoConfig
from unflat.engine.progress import console

if TYPE_CHECKING:
    from unflat.methods.base import Reconstructor

ENTRIES = {"photos", "heldout", "reconstructions", "generated"}
"""What these steps write into --out."""


@dataclass(frozen=True)
class HeldOut:
    """One held-back render: the network's input (and its mask) and another view of the same shape (the truth)."""

    name: str
    category: str
    image: Path
    mask: Path
    truth: Path


@dataclass(frozen=True)
class Generated:
    """One shape of the shipped generator: its neural render, depth, GLB and the GLB's turntable."""

    name: str
    sample: Path
    depth: Path | None
    mesh: Path | None
    turntable: Path | None


def write_photos(cfg: DemoConfig) -> list[Path]:
    """The packaged photos (at most --photos) -> out/photos/PKG-NAME.png."""
    from unflat.data.sample_photos import write_sample_photos

    if cfg.photos == 0:
        return []
    missing: dict[str, str] = {}
    paths = write_sample_photos(cfg.out / "photos", cfg.photos, missing)
    absent = [name for name in ("skimage", "sklearn", "matplotlib") if name in missing]
    if absent:
        console.print(f"[yellow]note:[/] no sample photos from {', '.join(absent)} (not installed: "
                      "pip install 'unflat[demo]')", highlight=False)
    console.print(f"{len(paths)} photos -> {cfg.out / 'photos'}", highlight=False)
    return paths


def write_heldout(cfg: DemoConfig, resolution: int) -> list[HeldOut]:
    """One shape per --heldout category rendered with synth seed --heldout-seed at ``resolution`` (two views):
    view 0 -> out/heldout/images/NAME.png + masks/NAME.png, view 1 -> truth/NAME.png."""
    from PIL import Image

    from unflat.data.commands import SynthConfig, run_synth
    from unflat.data.format import DatasetError, open_dataset

    if not cfg.heldout:
        return []
    root = cfg.out / "heldout"
    data_dir = root / "data"
    try:
        data = open_dataset(data_dir)
        if tuple(data.info.class_names) != tuple(cfg.heldout) or data.info.resolution != resolution:
            raise DatasetError("another recipe")
        console.print(f"reusing held-back renders {data_dir}", highlight=False)
    except DatasetError:
        run_synth(SynthConfig(out=data_dir, category=cfg.heldout, num_shapes=1, resolution=resolution,
                              views_per_shape=2, seed=cfg.heldout_seed, overwrite=True))
        data = open_dataset(data_dir)
    rows = []
    for folder in ("images", "masks", "truth"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for group in data.views_of_shape():
        first, other = int(group[0]), int(group[-1])
        category = data.info.class_names[int(data.labels[first])]
        name = f"{category}-{int(data.shape_ids[first]):04d}"
        row = HeldOut(name, category, root / "images" / f"{name}.png", root / "masks" / f"{name}.png",
                      root / "truth" / f"{name}.png")
        Image.fromarray(np.asarray(data.images[first])).save(row.image)
        Image.fromarray(np.asarray(data.masks[first])).save(row.mask)
        Image.fromarray(np.asarray(data.images[other])).save(row.truth)
        rows.append(row)
    return rows


def check_models(cfg: DemoConfig) -> None:
    """Before any work: the models the demo will use exist in the zoo and are of the right kind (one-line errors)."""
    from unflat.errors import UserError
    from unflat.zoo.load import find_model

    wanted = ([("reconstructor", cfg.reconstructor, "reconstructor")] if cfg.photos or cfg.heldout else []) + \
             ([("generator", cfg.generator, "generator")] if cfg.generate else [])
    for flag, name, kind in wanted:
        try:
            entry = find_model(name)
        except UserError as error:
            raise UserError(f"--{flag}: {error}") from None
        if entry.kind != kind:
            raise UserError(f"--{flag} {name}: a {entry.kind} ({entry.method}), not a {kind}; choose one that "
                            f"`unflat models` lists as kind {kind}")


def load_reconstructor(cfg: DemoConfig) -> "Reconstructor":
    """The shipped reconstructor --reconstructor (hash-checked), on --device; a one-line error for another kind."""
    from unflat.errors import UserError
    from unflat.methods.base import Reconstructor
    from unflat.runs import load_run

    method = load_run(f"zoo:{cfg.reconstructor}", cfg.device).method
    if not isinstance(method, Reconstructor):
        raise UserError(f"--reconstructor {cfg.reconstructor}: a {method.name} model, not a reconstructor; "
                        "choose one that `unflat models` lists as kind reconstructor")
    return method


def reconstruct(cfg: DemoConfig, method: "Reconstructor", photos: list[Path], heldout: list[HeldOut]) -> dict[str, Path]:
    """The shipped reconstructor on the photos (segmented) and the held-back renders (their masks) ->
    out/reconstructions/{photos,heldout}/NAME.glb, NAME.gif, NAME-input.png."""
    from unflat.data.segment import resolve_method

    options = dict(turntable=True, turntable_frames=cfg.turntable_frames, turntable_resolution=cfg.turntable_resolution)
    out = cfg.out / "reconstructions"
    written = {}
    if heldout:
        console.print(f"{len(heldout)} held-back renders (their masks, framed as rendered) -> {out / 'heldout'}",
                      highlight=False)
        # crop="none": the renders are framed like the training data, whose object size in the frame is the
        # network's cue for scale (cropping them halved the shipped model's held-back F-score, docs/models.md)
        method.reconstruct([r.image for r in heldout], out / "heldout", [r.mask for r in heldout], crop="none",
                           **options)
        written["held-back meshes"] = out / "heldout"
    if photos:
        segmenter = resolve_method("auto")
        console.print(f"{len(photos)} photos (segmented with {segmenter}) -> {out / 'photos'}", highlight=False)
        method.reconstruct(photos, out / "photos", None, segmenter=segmenter, **options)
        written["photo meshes"] = out / "photos"
    return written


def generate(cfg: DemoConfig) -> list[Generated]:
    """One sample per --generate class from the shipped generator -> out/generated/CLASS/ sample.png (its neural
    render), depth.png, the exported GLB and turntable.gif (of the GLB)."""
    import torch
    import trimesh

    from unflat.errors import UserError
    from unflat.export.images import depth_to_image, save_grid, save_mesh_turntable
    from unflat.methods.base import Generator3D
    from unflat.render.gl_backends import create_renderer
    from unflat.runs import load_run

    if not cfg.generate:
        return []
    method = load_run(f"zoo:{cfg.generator}", cfg.device).method
    if not isinstance(method, Generator3D):
        raise UserError(f"--generator {cfg.generator}: a {method.name} model, not a 3D generator; "
                        "choose one that `unflat models` lists as kind generator")
    names = list(method.info.class_names)
    renderer = create_renderer("auto", cfg.turntable_resolution)
    shapes = []
    for category in cfg.generate:
        if category not in names:
            raise UserError(f"--generate {category}: the generator {cfg.generator} has no class {category} "
                            f"(it has {', '.join(names)})")
        k = names.index(category)
        folder = cfg.out / "generated" / category
        samples = method.sample(1, cfg.seed, torch.full((1,), k))
        sample = save_grid(samples.images, folder / "sample.png", value_range=(-1, 1))
        depth = None
        if samples.depth is not None:
            depth = save_grid(depth_to_image(samples.depth, samples.masks), folder / "depth.png", value_range=(0, 1))
        glbs = method.export(folder / "meshes", 1, cfg.seed, k, ("glb",))
        turntable = None
        if glbs:
            mesh = trimesh.load(glbs[0], force="mesh")
            turntable = save_mesh_turntable(mesh, folder / "turntable.gif", renderer, frames=cfg.turntable_frames)
        else:
            console.print(f"[yellow]note:[/] the {category} sample has no surface to export", highlight=False)
        shapes.append(Generated(category, sample, depth, glbs[0] if glbs else None, turntable))
    return shapes
