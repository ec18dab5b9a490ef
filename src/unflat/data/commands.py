"""``unflat dataset synth | render | images``: configs (fields become --flags) and run functions.

Each command writes one dataset in unflat's format (``unflat.data.format``) and returns its path:

* ``run_synth``: embedded procedural categories rendered with the OpenGL renderer, with exact
  ground-truth meshes, masks, depth and cameras.
* ``run_render_meshes``: the user's mesh files rendered the same way (IG-GAN's ShapeNet setting).
* ``run_images``: in-the-wild photos, cropped and resized; cameras are unknown (a default
  frontal camera is stored for every image so the format stays uniform).

Rendering runs in worker processes (one OpenGL context each) when there is enough work; results
come back in job order and every random choice is seeded per shape, so a dataset is identical
whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Literal

import numpy as np
import trimesh
import torch

from unflat.cameras import Cameras
from unflat.data.backgrounds import BackgroundKind
from unflat.data.format import DatasetWriter
from unflat.data.image_files import Crop, LoadedImage, SkipReason, SkipReport, load_image, load_mask
from unflat.data.segment import Method as SegmentMethod
from unflat.errors import ConfigError, UserError
from unflat.render.gl_backends import RendererBackend, resolve_backend

if TYPE_CHECKING:
    from unflat.data.wild import WildSettings

LightingName = Literal["two-beams", "headlight"]


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------
def _check_range(name: str, values: tuple[float, float], lo: float, hi: float) -> None:
    if not (lo <= values[0] <= values[1] <= hi):
        raise ConfigError(name, f"must be (min, max) with {lo} <= min <= max <= {hi}, got {values}")


@dataclass
class _CameraFields:
    """Camera and rendering fields shared by ``synth`` and ``render``."""

    resolution: int = 64
    """Image side in pixels."""
    views_per_shape: int = 1
    """Views rendered per shape: 1 = unposed single-view data (cameras are stored anyway); V>1 = posed multi-view data."""
    seed: int = 0
    """Seed for shapes and cameras; the dataset is a pure function of the config."""
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    """Camera azimuth range in degrees (0 = camera on +Z looking at the front)."""
    elevation_range: tuple[float, float] = (-30.0, 60.0)
    """Camera elevation range in degrees (IG-GAN: -30..60 for chairs, 15..60 for couches and bathtubs)."""
    uniform_on_sphere: bool = False
    """Sample elevation area-uniformly on the sphere instead of uniformly in angle (IG-GAN: uniform in angle)."""
    radius: float = 3.0
    """Camera distance from the origin (shapes fit the unit sphere)."""
    fov_deg: float = 40.0
    """Vertical field of view in degrees (40 frames the unit sphere at radius 3 with a small margin)."""
    with_depth: bool = True
    """Store camera-space depth maps."""
    lighting: LightingName = "two-beams"
    """Lights attached to the camera: "two-beams" = IG-GAN's two beam lights 45 deg below, left and right; "headlight"."""
    material: Literal["parts", "grey"] = "parts"
    """Surface colours: "parts" = each part's own colour (files: their own); "grey" = one plain grey material,
    IG-GAN's setting (its voxel generator makes shape only, so its training images must not carry colour)."""
    supersample: int = 2
    """Render at this multiple of the resolution and average down (antialiasing, soft mask edges)."""
    renderer: RendererBackend = "auto"
    """OpenGL renderer: "moderngl" (default, headless EGL), "pyrender" (the optional extra unflat[pyrender]),
    "auto" (moderngl, else pyrender when installed). Both draw the same pictures."""
    workers: int = 0
    """Rendering processes; 0 = automatic (one per CPU core, up to 16, when there is enough work)."""
    overwrite: bool = False
    """Replace an existing dataset at --out."""

    def _validate_camera_fields(self) -> None:
        if self.resolution < 8 or self.resolution > 2048:
            raise ConfigError("resolution", f"must be in [8, 2048], got {self.resolution}")
        if self.views_per_shape < 1:
            raise ConfigError("views_per_shape", "must be at least 1")
        _check_range("azimuth_range", self.azimuth_range, -360, 360)
        _check_range("elevation_range", self.elevation_range, -90, 90)
        if self.radius <= 1.0:
            raise ConfigError("radius", f"must exceed 1 (shapes fill the unit sphere), got {self.radius}")
        if not 1.0 <= self.fov_deg <= 150.0:
            raise ConfigError("fov_deg", f"must be in [1, 150], got {self.fov_deg}")
        if not 1 <= self.supersample <= 4:
            raise ConfigError("supersample", "must be 1..4")
        if self.workers < 0:
            raise ConfigError("workers", "must be >= 0 (0 = automatic)")


@dataclass
class _SynthFields:
    out: Path = Path("data/synth")
    """Output dataset directory."""
    category: tuple[str, ...] = ("chair",)
    """Categories to generate (several = class-labelled data): chair, table, sofa, mug, car, lamp."""
    num_shapes: int = 100
    """Shapes per category."""
    wild: bool = False
    """In-the-wild composites (docs/data.md): packaged photos or procedural textures behind the object, random
    zoom and offset (through the stored intrinsics), varied light direction and colour, ground shadows
    (--lighting is not used: every view gets its own light)."""
    wild_backgrounds: BackgroundKind = "mixed"
    """With --wild: "photos" (scikit-image / scikit-learn / matplotlib sample photos, whichever are installed;
    procedural when none is), "procedural" (needs nothing) or "mixed" (either, with equal odds)."""
    wild_scale_range: tuple[float, float] = (0.5, 1.0)
    """With --wild: object zoom range (focal-length factor; 1 = the default framing, where the unit sphere fits)."""
    wild_occluders: float = 0.0
    """With --wild: probability that a view gets a textured occluder over part of the object (masks exclude it)."""
    wild_shadows: bool = True
    """With --wild: a soft ground shadow under the object along the key light (views from above the ground)."""


# Base order puts the command's own fields first in --help (dataclass fields follow reversed MRO).
@dataclass
class SynthConfig(_CameraFields, _SynthFields):
    """Render the embedded procedural categories (with exact 3D ground truth) into a dataset."""

    def validate(self) -> None:
        from unflat.data.synth import CATEGORIES  # noqa: PLC0415

        unknown = [c for c in self.category if c not in CATEGORIES]
        if not self.category or unknown:
            raise ConfigError("category", f"unknown {unknown}; choose from {', '.join(CATEGORIES)}")
        if len(set(self.category)) != len(self.category):
            raise ConfigError("category", "lists a category twice")
        if self.num_shapes < 1:
            raise ConfigError("num_shapes", "must be at least 1")
        _check_range("wild_scale_range", self.wild_scale_range, 0.05, 4.0)
        if not 0 <= self.wild_occluders <= 1:
            raise ConfigError("wild_occluders", f"must be a probability in [0, 1], got {self.wild_occluders}")
        if self.wild_backgrounds not in ("mixed", "photos", "procedural"):
            raise ConfigError("wild_backgrounds", "must be mixed, photos or procedural")
        self._validate_camera_fields()

    def wild_settings(self) -> "WildSettings | None":
        """What the rendering workers need for wild composites (None without --wild)."""
        if not self.wild:
            return None
        from unflat.data.backgrounds import find_photos  # noqa: PLC0415
        from unflat.data.wild import WildSettings  # noqa: PLC0415

        photos = find_photos() if self.wild_backgrounds != "procedural" else ()
        return WildSettings(self.wild_backgrounds, tuple(self.wild_scale_range), occluders=self.wild_occluders,
                            shadows=self.wild_shadows, photos=photos)


@dataclass
class _RenderFields:
    meshes: Path = Path("meshes")
    """Folder of mesh files; first-level sub-folders become class labels when present."""
    out: Path = Path("data/rendered")
    """Output dataset directory."""


@dataclass
class RenderMeshesConfig(_CameraFields, _RenderFields):
    """Render your own meshes (OBJ/GLB/GLTF/PLY/STL/OFF, recursively; sub-folders = classes) into a dataset."""

    resolution: int = 128
    """Image side in pixels (IG-GAN: 128)."""
    lvp: bool = False
    """IG-GAN's limited-viewpoint setting: azimuth within +-60 deg of the front, elevation 15..60 (overrides the ranges)."""
    up_axis: Literal["y", "z"] = "y"
    """Up axis of the files: "y" (OBJ/glTF/ShapeNet) or "z" (many STL/CAD exports)."""
    store_meshes: bool = True
    """Store the normalised meshes as ground truth (meshes/ in the dataset)."""

    def validate(self) -> None:
        if not self.meshes.is_dir():
            raise ConfigError("meshes", f"{self.meshes} is not a directory")
        self._validate_camera_fields()

    def camera_ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(azimuth_range, elevation_range) after applying ``lvp``."""
        return ((-60.0, 60.0), (15.0, 60.0)) if self.lvp else (self.azimuth_range, self.elevation_range)


@dataclass
class ImagesConfig:
    """Turn a folder of photos (class sub-folders = labels, ImageNet style) into a dataset."""

    src: Path = Path("photos")
    """Folder of images; first-level sub-folders are classes (files directly inside form one class)."""
    out: Path = Path("data/images")
    """Output dataset directory."""
    resolution: int = 128
    """Image side in pixels."""
    crop: Crop | Literal["object"] = "object"
    """Make images square: "object" = find the object (segmentation, or your --masks / alpha), centre it with
    --margin and store its mask (photos where none is found are skipped and reported); "center" crop; "pad" with
    white; "stretch"."""
    margin: float = 0.15
    """With --crop object: space on each side of the object's box, as a fraction of its longer side."""
    segmenter: SegmentMethod = "auto"
    """With --crop object and no masks: "isnet" (IS-Net weights from `bash scripts/setup.sh segment`), "grabcut"
    (OpenCV), "colour" (NumPy/SciPy); "auto" = isnet when installed, else grabcut when OpenCV is, else colour."""
    masks: Path | None = None
    """Optional folder of masks with the same relative names (any image suffix); images without a mask are skipped."""
    alpha_as_mask: bool = False
    """Use the images' alpha channel as the mask (images without alpha get a full mask)."""
    min_side: int = 16
    """Skip images whose shorter side is below this many pixels."""
    max_pixels: int = 0
    """Larger images are decoded at reduced size (JPEG) or skipped; 0 = PIL's decompression-bomb limit."""
    radius: float = 3.0
    """Distance of the default frontal camera stored for every photo (photos have no known camera)."""
    fov_deg: float = 40.0
    """Field of view of the default frontal camera."""
    workers: int = 0
    """Decoding processes; 0 = automatic."""
    overwrite: bool = False
    """Replace an existing dataset at --out."""

    def validate(self) -> None:
        if not self.src.is_dir():
            raise ConfigError("src", f"{self.src} is not a directory")
        if self.masks is not None and not self.masks.is_dir():
            raise ConfigError("masks", f"{self.masks} is not a directory")
        if self.masks is not None and self.alpha_as_mask:
            raise ConfigError("alpha_as_mask", "choose either --masks or --alpha-as-mask")
        if self.crop not in ("object", "center", "pad", "stretch"):
            raise ConfigError("crop", "must be object, center, pad or stretch")
        if not 0 <= self.margin <= 2:
            raise ConfigError("margin", f"must be in [0, 2], got {self.margin}")
        if self.resolution < 8 or self.resolution > 2048:
            raise ConfigError("resolution", f"must be in [8, 2048], got {self.resolution}")
        if self.min_side < 1 or self.max_pixels < 0 or self.workers < 0:
            raise ConfigError("min_side", "min_side must be >= 1, max_pixels and workers >= 0")


# ---------------------------------------------------------------------------------------------
# Rendering jobs (run in worker processes)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderSettings:
    """Everything a worker needs to render a shape's views."""

    resolution: int
    views: int
    azimuth_range: tuple[float, float]
    elevation_range: tuple[float, float]
    uniform_on_sphere: bool
    radius: float
    fov_deg: float
    lighting: LightingName
    supersample: int
    with_depth: bool
    material: str = "parts"
    renderer: str = "auto"  # a resolved backend: "moderngl" or "pyrender"
    wild: "WildSettings | None" = None  # in-the-wild composites (unflat.data.wild)


GREY = (178, 178, 178, 255)  # IG-GAN's plain grey (0.7), what its voxel generator's renders look like


@dataclass(frozen=True)
class ShapeJob:
    """One shape to render: from a procedural category (``category``, ``shape_seed``) or a file."""

    shape_id: int
    class_id: int
    camera_seed: int
    category: str = ""
    shape_seed: int = 0
    path: str = ""
    up_axis: str = "y"


@dataclass
class RenderedShape:
    """images uint8 [V,R,R,3], masks float [V,R,R], depth float [V,R,R] or None, cameras (V), mesh."""

    images: np.ndarray
    masks: np.ndarray
    depth: np.ndarray | None
    cameras: Cameras
    mesh: object
    backgrounds: list[str] | None = None  # wild composites: what each view's background is


_WORKER_RENDERER = None
_WORKER_SETTINGS: RenderSettings | None = None


def _init_worker(settings: RenderSettings) -> None:
    global _WORKER_SETTINGS, _WORKER_RENDERER
    torch.set_num_threads(1)  # one process per core already
    _WORKER_SETTINGS = settings
    _WORKER_RENDERER = None


def _renderer(settings: RenderSettings):
    global _WORKER_RENDERER
    if _WORKER_RENDERER is None:
        from unflat.render.gl_backends import create_renderer  # noqa: PLC0415
        from unflat.render.gl_scene import Lighting  # noqa: PLC0415

        lighting = Lighting.two_beams() if settings.lighting == "two-beams" else Lighting.headlight()
        if settings.wild is not None:  # albedo over black plus normals: every view is lit and composited after
            _WORKER_RENDERER = create_renderer(settings.renderer, settings.resolution, lighting=lighting,  # type: ignore[arg-type]
                                               supersample=settings.supersample, compute_normals=True, unlit=True,
                                               background=(0.0, 0.0, 0.0))
        else:
            _WORKER_RENDERER = create_renderer(settings.renderer, settings.resolution, lighting=lighting,  # type: ignore[arg-type]
                                               supersample=settings.supersample, compute_normals=False)
    return _WORKER_RENDERER


def job_cameras(settings: RenderSettings, camera_seed: int) -> Cameras:
    """The V cameras of one shape: a pure function of the seed."""
    generator = torch.Generator().manual_seed(camera_seed)
    return Cameras.sample_orbit(settings.views, generator, settings.azimuth_range, settings.elevation_range,
                                settings.radius, settings.fov_deg, settings.uniform_on_sphere)


def render_job(job: ShapeJob, settings: RenderSettings | None = None) -> RenderedShape | SkipReason:
    """Build (or load) the shape of ``job`` and render its views."""
    settings = settings or _WORKER_SETTINGS
    assert settings is not None
    if job.path:
        from unflat.data.prepare_meshes import load_mesh  # noqa: PLC0415

        mesh = load_mesh(Path(job.path), job.up_axis)  # type: ignore[arg-type]
        if isinstance(mesh, SkipReason):
            return mesh
    else:
        from unflat.data.synth import make_shape  # noqa: PLC0415

        mesh = make_shape(job.category, job.shape_seed).mesh
    if settings.material == "grey":
        mesh = mesh.copy()
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.tile(GREY, (len(mesh.vertices), 1)))
    cameras = job_cameras(settings, job.camera_seed)
    if settings.wild is not None:
        return _render_wild(job, mesh, cameras, settings)
    try:
        out = _renderer(settings).render(mesh, cameras)
    except Exception as exc:  # noqa: BLE001  (a malformed mesh must not stop the dataset)
        if not job.path:
            raise
        return SkipReason("render failed", f"{type(exc).__name__}: {str(exc)[:100]}")
    images = np.clip(np.rint(out.rgb.permute(0, 2, 3, 1).numpy() * 255), 0, 255).astype(np.uint8)
    depth = out.depth[:, 0].numpy() if settings.with_depth else None
    return RenderedShape(images, out.mask[:, 0].numpy(), depth, cameras, mesh)


def _render_wild(job: ShapeJob, mesh: trimesh.Trimesh, cameras: Cameras, settings: RenderSettings) -> RenderedShape:
    from unflat.data.wild import composite, frame_cameras  # noqa: PLC0415

    assert settings.wild is not None
    rng = np.random.default_rng([job.camera_seed, 0x57])  # the shape's own stream: any worker, same views
    cameras = frame_cameras(cameras, np.asarray(mesh.vertices), rng, settings.wild.scale_range, settings.wild.margin)
    views = composite(_renderer(settings), mesh, cameras, rng, settings.wild, settings.resolution)
    return RenderedShape(views.images, views.masks, views.depth if settings.with_depth else None, cameras, mesh,
                         views.backgrounds)


def _render_job_indexed(job: ShapeJob) -> tuple[ShapeJob, RenderedShape | SkipReason]:
    return job, render_job(job)


def auto_workers(requested: int, work_items: int, minimum_items: int = 64) -> int:
    """0 = automatic: one process per core (at most 16) when there are enough items to amortise start-up."""
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if work_items < minimum_items or cores < 2 else min(cores, 16)


def run_jobs(jobs: list[ShapeJob], settings: RenderSettings, workers: int) -> Iterator[tuple[ShapeJob, RenderedShape | SkipReason]]:
    """Render jobs in order, in ``workers`` processes (1 = in this process)."""
    if workers <= 1:
        _init_worker(settings)
        try:
            for job in jobs:
                yield job, render_job(job, settings)
        finally:
            _release_renderer()
        return
    preload = [__name__, "unflat.data.synth", "unflat.data.prepare_meshes"]
    if settings.renderer == "pyrender":
        from unflat.render.pyrender_backend import choose_platform  # noqa: PLC0415

        choose_platform()  # fixes PYOPENGL_PLATFORM for the workers before anything imports OpenGL
        preload.append("pyrender")
    context = _worker_context(preload)
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    with context.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
        yield from pool.imap(_render_job_indexed, jobs, chunksize=chunk)


def _worker_context(preload: list[str]) -> multiprocessing.context.BaseContext:
    """Worker processes that inherit no OpenGL/CUDA state: a fork server (a fresh interpreter that
    imports ``preload`` once, then forks each worker) where available, else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(preload)
        return context
    return multiprocessing.get_context("spawn")


def _release_renderer() -> None:
    global _WORKER_RENDERER
    if _WORKER_RENDERER is not None:
        _WORKER_RENDERER.close()
        _WORKER_RENDERER = None


# ---------------------------------------------------------------------------------------------
# Progress and reporting
# ---------------------------------------------------------------------------------------------
def _progress(total: int, description: str, unit: str):
    """A bar with its ETA on a terminal, a plain progress line every few seconds otherwise (logs, CI, nohup)."""
    from unflat.engine.progress import PhaseProgress  # noqa: PLC0415

    return PhaseProgress(description, total, unit)


def _print_report(report: SkipReport, used: int, total: int, what: str) -> None:
    """The skip table (reason | count | examples) and notes, on stderr."""
    from unflat.engine.progress import make_console  # noqa: PLC0415

    console = make_console()
    if report.total:
        console.print(report.table(f"Used {used} of {total} {what}; skipped:"))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")


def _print_done(out: Path, images: int, classes: int) -> None:
    from unflat.engine.progress import make_console  # noqa: PLC0415

    make_console().print(f"[green]wrote[/] {images} images ({classes} classes) to {out}")


def _write_rendered(writer: DatasetWriter, rendered: RenderedShape, job: ShapeJob, store_mesh: bool) -> None:
    for v in range(len(rendered.images)):
        writer.add(
            image=rendered.images[v],
            camera=rendered.cameras[v],
            class_id=job.class_id,
            shape_id=job.shape_id,
            mask=rendered.masks[v],
            depth=None if rendered.depth is None else rendered.depth[v],
        )
    if store_mesh:
        writer.add_mesh(job.shape_id, rendered.mesh)


def _settings(cfg: _CameraFields, azimuth_range: tuple[float, float], elevation_range: tuple[float, float]) -> RenderSettings:
    return RenderSettings(cfg.resolution, cfg.views_per_shape, tuple(azimuth_range), tuple(elevation_range),  # type: ignore[arg-type]
                          cfg.uniform_on_sphere, cfg.radius, cfg.fov_deg, cfg.lighting, cfg.supersample, cfg.with_depth,
                          cfg.material, resolve_backend(cfg.renderer),
                          cfg.wild_settings() if isinstance(cfg, SynthConfig) else None)


def _seed_of(*keys: int) -> int:
    """A 31-bit seed derived from integer keys (stable across platforms and processes)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


def _config_dict(cfg: object) -> dict:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
def run_synth(cfg: SynthConfig) -> Path:
    """Generate ``num_shapes`` shapes per category, render ``views_per_shape`` views of each."""
    cfg.validate()
    settings = _settings(cfg, cfg.azimuth_range, cfg.elevation_range)
    jobs = [
        ShapeJob(shape_id=c * cfg.num_shapes + j, class_id=c, camera_seed=_seed_of(cfg.seed, 1, c, j),
                 category=category, shape_seed=_seed_of(cfg.seed, 0, c, j))
        for c, category in enumerate(cfg.category)
        for j in range(cfg.num_shapes)
    ]
    workers = auto_workers(cfg.workers, len(jobs) * cfg.views_per_shape)
    source: dict = {"command": "synth", "config": _config_dict(cfg)}
    used: dict[str, int] = {}
    if settings.wild is not None:
        source["wild"] = {"photos": [p.name for p in settings.wild.photos], "backgrounds_used": used,
                          "cameras": "framing varies through the intrinsics (zoom = focal, offset = principal point)"}
    with DatasetWriter(cfg.out, cfg.resolution, list(cfg.category), kind="synth", with_masks=True,
                       with_depth=cfg.with_depth, views_per_shape=cfg.views_per_shape, overwrite=cfg.overwrite,
                       source=source, background="wild" if cfg.wild else "white") as writer:
        with _progress(len(jobs), f"synth {'+'.join(cfg.category)}", "shapes") as progress:
            for job, rendered in run_jobs(jobs, settings, workers):
                assert isinstance(rendered, RenderedShape)
                _write_rendered(writer, rendered, job, store_mesh=True)
                for name in rendered.backgrounds or ():
                    family = name.split(":")[0] if name.startswith("photo:") else name
                    used[family] = used.get(family, 0) + 1
                progress.advance()
    _print_done(cfg.out, len(jobs) * cfg.views_per_shape, len(cfg.category))
    return cfg.out


def run_render_meshes(cfg: RenderMeshesConfig) -> Path:
    """Render every readable mesh under ``cfg.meshes``; unreadable files are skipped and reported."""
    from unflat.data.prepare_meshes import find_mesh_files  # noqa: PLC0415

    cfg.validate()
    items, classes = find_mesh_files(cfg.meshes)
    if not items:
        raise UserError(f"{cfg.meshes}: no mesh files found (looked for .obj .glb .gltf .ply .stl .off, recursively)")
    azimuth_range, elevation_range = cfg.camera_ranges()
    settings = _settings(cfg, azimuth_range, elevation_range)
    class_ids = {name: i for i, name in enumerate(classes)}
    jobs = [
        ShapeJob(shape_id=i, class_id=class_ids[cls], camera_seed=_seed_of(cfg.seed, 1, i), path=str(path), up_axis=cfg.up_axis)
        for i, (path, cls) in enumerate(items)
    ]
    report = SkipReport()
    workers = auto_workers(cfg.workers, len(jobs) * cfg.views_per_shape)
    source = {"command": "render", "config": _config_dict(cfg)}
    used = 0
    with DatasetWriter(cfg.out, cfg.resolution, classes, kind="rendered", with_masks=True, with_depth=cfg.with_depth,
                       views_per_shape=cfg.views_per_shape, overwrite=cfg.overwrite, source=source) as writer:
        with _progress(len(jobs), "render meshes", "meshes") as progress:
            for job, rendered in run_jobs(jobs, settings, workers):
                if isinstance(rendered, SkipReason):
                    report.add(rendered, Path(job.path).relative_to(cfg.meshes))
                else:
                    _write_rendered(writer, rendered, job, store_mesh=cfg.store_meshes)
                    used += 1
                progress.advance()
        source["skipped"] = report.as_dict()
        source["used"] = used
        _print_report(report, used, len(jobs), "mesh files")
        if used == 0:
            raise UserError(f"{cfg.meshes}: none of the {len(jobs)} mesh files could be used (see the table above)")
    _print_done(cfg.out, used * cfg.views_per_shape, len(classes))
    return cfg.out


@dataclass(frozen=True)
class ImageJob:
    """One photo to decode (in a worker process)."""

    path: str
    mask_path: str | None
    resolution: int
    crop: str
    need_mask_file: bool
    min_side: int
    max_pixels: int
    margin: float = 0.15
    segmenter: str = "auto"
    alpha_as_mask: bool = False


def _load_item(job: ImageJob) -> LoadedImage | SkipReason | tuple[LoadedImage, np.ndarray]:
    """Decode one image (and its mask); runs in worker processes."""
    if job.need_mask_file and job.mask_path is None:
        return SkipReason("no mask", "no file with the same relative name in --masks")
    if job.crop == "object":
        return _load_object(job)
    loaded = load_image(job.path, job.resolution, job.crop, min_side=job.min_side, max_pixels=job.max_pixels or None)  # type: ignore[arg-type]
    if isinstance(loaded, SkipReason) or not job.need_mask_file:
        return loaded
    mask = load_mask(job.mask_path, job.resolution, job.crop)  # type: ignore[arg-type]
    if isinstance(mask, SkipReason):
        return SkipReason("bad mask", f"{mask}")
    return loaded, mask


def _load_object(job: ImageJob) -> SkipReason | tuple[LoadedImage, np.ndarray]:
    """--crop object: the object's mask (the user's, the alpha, or segmentation), then a centred square crop."""
    from unflat.data.object_crop import EMPTY_MASK, crop_object, decode_padded, find_object, work_side  # noqa: PLC0415

    decoded = decode_padded(job.path, work_side(job.resolution), job.min_side, job.max_pixels or None,
                            job.mask_path if job.need_mask_file else None)
    if isinstance(decoded, SkipReason):
        return decoded
    rgb, content, alpha, mask = decoded
    if job.alpha_as_mask and alpha is not None:
        mask = alpha
    elif job.alpha_as_mask:
        mask = np.zeros(rgb.shape[:2], np.uint8)
        mask[content[0]:content[2], content[1]:content[3]] = 255  # no alpha: the whole photo, as before
    if mask is None:
        found = find_object(rgb, content, job.segmenter)  # type: ignore[arg-type]
        if isinstance(found, SkipReason):
            return found
        mask = found
    if not (mask > (127 if mask.dtype == np.uint8 else 0.5)).any():
        return SkipReason(EMPTY_MASK, "no pixel of the mask is set")
    image, crop_mask = crop_object(rgb, mask, content, job.resolution, job.margin)
    width = content[3] - content[1]
    return LoadedImage(image, None, (width, content[2] - content[0])), crop_mask


def _map_ordered(fn, items: list, workers: int) -> Iterable:
    if workers <= 1:
        return map(fn, items)
    context = _worker_context([__name__])
    pool = context.Pool(workers)
    chunk = max(1, min(64, len(items) // (workers * 8)))

    def generate():
        with pool:
            yield from pool.imap(fn, items, chunksize=chunk)

    return generate()


def with_masks_given(cfg: ImagesConfig) -> bool:
    """The user supplies masks (a folder, or the alpha channel)."""
    return cfg.masks is not None or cfg.alpha_as_mask


def run_images(cfg: ImagesConfig) -> Path:
    """Decode, crop and resize every usable image under ``cfg.src``; report what was skipped and why."""
    from unflat.data.prepare_images import find_image_files, find_mask  # noqa: PLC0415

    cfg.validate()
    report = SkipReport()
    items, classes = find_image_files(cfg.src, report)
    if not items:
        raise UserError(f"{cfg.src}: no files found")
    class_ids = {name: i for i, name in enumerate(classes)}
    with_masks = cfg.masks is not None or cfg.alpha_as_mask or cfg.crop == "object"
    args = [
        ImageJob(str(path), None if cfg.masks is None else (str(m) if (m := find_mask(path, cfg.src, cfg.masks)) else None),
                 cfg.resolution, cfg.crop, cfg.masks is not None, cfg.min_side, cfg.max_pixels, cfg.margin,
                 cfg.segmenter, cfg.alpha_as_mask)
        for path, _ in items
    ]
    camera = Cameras.from_orbit(torch.zeros(1), torch.zeros(1), cfg.radius, cfg.fov_deg)
    full_mask = np.full((cfg.resolution, cfg.resolution), 255, np.uint8)
    used_per_class = np.zeros(len(classes), np.int64)
    source: dict = {"command": "images", "config": _config_dict(cfg), "cameras": "unknown: default frontal camera stored"}
    backend = None
    if cfg.crop == "object" and not with_masks_given(cfg):
        from unflat.data.segment import resolve_method  # noqa: PLC0415

        backend = resolve_method(cfg.segmenter)
        kind = "IS-Net" if backend == "isnet" else "weight-free"
        source["masks"] = f"found by {kind} segmentation ({backend}); objects cropped and centred"
    # segmentation makes each photo slower: worth workers sooner; IS-Net's onnxruntime session already uses every
    # core, so one process (a session per worker would oversubscribe the CPU and load the model N times)
    workers = auto_workers(cfg.workers, len(items), minimum_items=32 if cfg.crop == "object" else 256)
    if backend == "isnet" and cfg.workers == 0:
        workers = 1
    # photos show their scenes; RGBA cut-outs are composited over white (image_files)
    background = "white" if cfg.alpha_as_mask else "wild"
    with DatasetWriter(cfg.out, cfg.resolution, classes, kind="images", with_masks=with_masks, with_depth=False,
                       views_per_shape=1, overwrite=cfg.overwrite, source=source, background=background) as writer:
        with _progress(len(items), "images", "images") as progress:
            for (path, cls), result in zip(items, _map_ordered(_load_item, args, workers)):
                progress.advance()
                if isinstance(result, SkipReason):
                    report.add(result, path.relative_to(cfg.src))
                    continue
                loaded, mask = result if isinstance(result, tuple) else (result, None)
                if cfg.alpha_as_mask and cfg.crop != "object":
                    mask = loaded.alpha if loaded.alpha is not None else full_mask
                writer.add(image=loaded.rgb, camera=camera, class_id=class_ids[cls], shape_id=writer.count, mask=mask)
                used_per_class[class_ids[cls]] += 1
        if cfg.crop == "object" and report.counts.get("no object found"):
            report.notes.append("photos without a clear object (scenes, or an object filling the frame) were skipped; "
                                "--crop center keeps them (without masks)")
        for name, count in zip(classes, used_per_class):
            if count == 0:
                report.notes.append(f"class '{name}' has files but no usable image; its label {class_ids[name]} stays reserved")
        source["skipped"] = report.as_dict()
        source["used"] = int(used_per_class.sum())
        _print_report(report, int(used_per_class.sum()), len(items), "files")
        if used_per_class.sum() == 0:
            raise UserError(f"{cfg.src}: none of the {len(items)} files is a usable image (see the table above)")
    _print_done(cfg.out, int(used_per_class.sum()), len(classes))
    return cfg.out

