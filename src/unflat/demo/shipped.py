"""The default `unflat demo`: the shipped models on real photos, held-back renders and new samples.

1. photos: the photos scikit-image / scikit-learn / matplotlib ship (unflat.data.sample_photos);
2. held-back renders: one embedded shape per category, synth seed 1000 (the shipped models saw seed 0), with
   their masks and a second view as ground truth;
3. ``unflat reconstruct --model progressive-6cat-128``: a textured GLB + turntable per image;
4. ``unflat generate --model mvtriplane-6cat-64``: one sample per class (image, depth, GLB) + a GLB turntable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unflat.demo.config import DemoConfig
from unflat.engine.progress import console

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
    depth: Path
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


def load_reconstructor(cfg: DemoConfig):  # noqa: ANN201 - a Reconstructor method
    """The shipped reconstructor (hash-checked), on --device."""
    from unflat.runs import load_run

    return load_run(f"zoo:{cfg.reconstructor}", cfg.device).method


def reconstruct(cfg: DemoConfig, method, photos: list[Path], heldout: list[HeldOut]) -> dict[str, Path]:  # noqa: ANN001
    """The shipped reconstructor on the photos (segmented) and the held-back renders (their masks) ->
    out/reconstructions/{photos,heldout}/NAME.glb, NAME.gif, NAME-input.png."""
    from unflat.data.segment import resolve_method

    options = dict(turntable=True, turntable_frames=cfg.turntable_frames, turntable_resolution=cfg.turntable_resolution)
    out = cfg.out / "reconstructions"
    written = {}
    if heldout:
        console.print(f"{len(heldout)} held-back renders (their masks) -> {out / 'heldout'}", highlight=False)
        method.reconstruct([r.image for r in heldout], out / "heldout", [r.mask for r in heldout], **options)
        written["held-back meshes"] = out / "heldout"
    if photos:
        segmenter = resolve_method("auto")
        console.print(f"{len(photos)} photos (segmented with {segmenter}) -> {out / 'photos'}", highlight=False)
        method.reconstruct(photos, out / "photos", None, segmenter=segmenter, **options)
        written["photo meshes"] = out / "photos"
    return written


def generate(cfg: DemoConfig) -> list[Generated]:
    """One sample per --generate class from the shipped generator -> out/generated/CLASS/ (samples, depth,
    meshes/.../*.glb) + turntable.gif of the GLB."""
    import trimesh

    from unflat.errors import UserError
    from unflat.export.images import save_mesh_turntable
    from unflat.render.gl_backends import create_renderer
    from unflat.runs import load_run

    if not cfg.generate:
        return []
    loaded = load_run(f"zoo:{cfg.generator}", cfg.device)
    method = loaded.method
    names = list(method.info.class_names)
    renderer = create_renderer("auto", cfg.turntable_resolution)
    shapes = []
    for category in cfg.generate:
        if category not in names:
            raise UserError(f"--generate {category}: the generator {cfg.generator} has no class {category} "
                            f"(it has {', '.join(names)})")
        k = names.index(category)
        folder = cfg.out / "generated" / category
        written = method.generate(folder, 1, cfg.seed, k, meshes=True, videos=False)
        glbs = [p for p in written if Path(p).suffix == ".glb"]
        turntable = None
        if glbs:
            mesh = trimesh.load(glbs[0], force="mesh")
            turntable = save_mesh_turntable(mesh, folder / "turntable.gif", renderer, frames=cfg.turntable_frames)
        else:
            console.print(f"[yellow]note:[/] the {category} sample has no surface to export", highlight=False)
        tag = f"class{k}_{category}"
        shapes.append(Generated(category, folder / f"samples_{tag}.png", folder / f"depth_{tag}.png",
                                glbs[0] if glbs else None, turntable))
    return shapes
