"""The `unflat` command. Every sub-command parses a dataclass config with tyro, so each option's
docstring is its --help text. User errors print one line (``--debug`` shows the traceback)."""

from __future__ import annotations

import errno
import importlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence, TypeVar

from tyro.conf import Positional

from unflat import __version__
from unflat.errors import UserError
from unflat.outputs import check_output_dir, claim_output_dir
from unflat.parsing import parse
from unflat.zoo.args import MODEL_HELP, with_model

T = TypeVar("T")
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class NotBuiltYet(UserError):
    """A sub-command whose capability is not available in this build."""


def _import(module: str, what: str):
    """Import an optional part of unflat; a missing one is reported as not built, not as a crash."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("unflat"):
            raise NotBuiltYet(f"{what} is not built in this version of unflat ({exc.name} is missing)") from None
        raise UserError(f"{what} needs the Python package '{exc.name}': pip install {exc.name}") from None


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
TRAIN_USAGE = """usage: unflat train METHOD --data DIR [--preset tiny|small|paper] [--out RUN] [--max-steps N] [any config field]
       unflat train [METHOD] --config FILE.yaml [any config field]   (e.g. a run's RUN/config.yaml, with --out NEW)
       unflat train --resume RUN [--max-steps N]

Train a method. Every field of the method's config is a flag: see `unflat train METHOD --help`.
Presets: tiny (tests, a step in well under a second on CPU), small (CPU demo, minutes), paper (the paper's sizes, GPU).
Multi-GPU: torchrun --nproc_per_node N -m unflat train METHOD ...
"""
TRAIN_GROUPS = {"method": "methods", "helper": "helpers (train a part the methods use)"}


@dataclass
class TrainOptions:
    """What `unflat train` reads before the method's config: where the defaults come from, or a run to resume."""

    preset: Literal["tiny", "small", "paper"] = "small"
    """The method's preset whose values are the defaults (a --config file's fields sit on top)."""
    config: Path | None = None
    """YAML config file (a run's RUN/config.yaml, or a partial file of fields); flags override it."""
    resume: Path | None = None
    """Run directory (or checkpoint file) to continue with its exact counters, schedules and data order."""


@dataclass
class ResumeArgs:
    """Continue a run from RUN/checkpoints/latest.pt with its exact counters, schedules and data order."""

    max_steps: int | None = None
    """Train until this total step count (default: the run's own max_steps)."""
    out: Path | None = None
    """Continue in this new run directory instead of the checkpoint's own (needed for a checkpoint file that is not inside a run directory)."""


def cmd_train(args: list[str]) -> int:
    from unflat import runs
    from unflat.engine import distributed

    method, rest = (args[0], args[1:]) if args and not args[0].startswith("-") else (None, list(args))
    options, rest = parse(TrainOptions, rest, "unflat train", known_only=True)
    if options.resume is not None:
        if method is not None or options.config is not None:
            raise UserError("--resume continues a run with its saved config: pass only --resume RUN "
                            "[--max-steps N] [--out NEW]")
        resume = parse(ResumeArgs, rest, "unflat train --resume RUN")
        overrides = {"max_steps": resume.max_steps} if resume.max_steps is not None else None
        result = runs.resume(options.resume, overrides, resume.out)
        distributed.shutdown()  # torchrun: every rank leaves the process group together
        return 130 if result.interrupted else 0
    resolved = resolve_train_config(method, options, rest)
    if resolved is None:
        return 0 if not args or any(a in ("-h", "--help") for a in args) else 2
    result = runs.train(*resolved)
    distributed.shutdown()  # torchrun: every rank leaves the process group together
    return 130 if result.interrupted else 0


def train_usage() -> str:
    """`unflat train`'s usage, with the registered methods and helpers listed apart."""
    from unflat.methods.registry import method_specs_by_kind

    return TRAIN_USAGE + "".join(f"\n{TRAIN_GROUPS[kind]}:\n" + "".join(f"  {name:<16} {spec.description}\n"
                                                                     for name, spec in specs.items())
                                 for kind, specs in method_specs_by_kind().items() if specs)


def train_config(args: list[str]):
    """(spec, config) of `unflat train ARGS` (no --resume): the preset's values, then --config FILE's, then the
    flags; None after printing the usage (no method named)."""
    method, rest = (args[0], args[1:]) if args and not args[0].startswith("-") else (None, list(args))
    options, rest = parse(TrainOptions, rest, "unflat train", known_only=True)
    return resolve_train_config(method, options, rest)


def resolve_train_config(method: str | None, options: TrainOptions, rest: list[str]):
    """(spec, config) of METHOD (or the --config file's method) with ``rest`` parsed by tyro on the defaults of
    the preset and the file; None after printing the usage when no method is named."""
    from unflat.config import read_config_file
    from unflat.methods.registry import get_method

    config_file = read_config_file(options.config) if options.config is not None else None
    if method is None and config_file is not None:
        if config_file.method is None:
            raise UserError(f"--config {config_file.path} names no method: pass METHOD (unflat train METHOD --config "
                            "FILE) or add `method: NAME` to the file")
        method = config_file.method
    if method is None:
        print(train_usage(), end="")
        return None
    spec = get_method(method)
    if config_file is not None and config_file.method not in (None, spec.name):
        raise UserError(f"--config {config_file.path} is a '{config_file.method}' config, not '{spec.name}'")
    description = (
        f"Train `{spec.name}`: {spec.description}\n\n"
        f"--preset {{{'|'.join(spec.presets)}}} picks the defaults below (default: small; these are the "
        f"'{options.preset}' values)."
    )
    defaults = spec.config(options.preset)
    if config_file is not None:
        defaults = config_file.on(defaults)
        description += f"\n--config {config_file.path}: its values are the defaults below; flags override them."
    return spec, parse(spec.config_cls, rest, f"unflat train {spec.name}", description, default=defaults)


# ---------------------------------------------------------------------------------------------
# dataset
# ---------------------------------------------------------------------------------------------
DATASET_COMMANDS = {
    "synth": ("unflat.data.commands", "SynthConfig", "run_synth", "embedded procedural categories with ground-truth 3D"),
    "render": ("unflat.data.commands", "RenderMeshesConfig", "run_render_meshes", "your OBJ/GLB/PLY/STL meshes -> dataset"),
    "images": ("unflat.data.commands", "ImagesConfig", "run_images", "in-the-wild photos (class sub-folders = labels) -> dataset"),
    "from-generator": ("unflat.runs", "FromGeneratorConfig", "run_from_generator",
                       "posed multi-view images + masks rendered by a trained 3D generator run"),
}


def cmd_dataset(args: list[str]) -> int:
    if not args or args[0] not in DATASET_COMMANDS:
        print("usage: unflat dataset {" + ",".join(DATASET_COMMANDS) + "} [options]\n\nMake an unflat dataset:")
        for name, (*_, text) in DATASET_COMMANDS.items():
            print(f"  {name:<16} {text}")
        return 0 if not args or args[0] in ("-h", "--help") else 2
    module_name, config_name, run_name, text = DATASET_COMMANDS[args[0]]
    module = _import(module_name, f"`unflat dataset {args[0]}`")
    rest = with_model(args[1:]) if args[0] == "from-generator" else args[1:]
    cfg = parse(getattr(module, config_name), rest, f"unflat dataset {args[0]}",
                text + (MODEL_HELP if args[0] == "from-generator" else ""))
    getattr(module, run_name)(cfg)
    return 0


# ---------------------------------------------------------------------------------------------
# Commands on a trained run
# ---------------------------------------------------------------------------------------------
@dataclass
class GenerateArgs:
    """Sample a trained generator: images, depth and meshes for N seeds."""

    run: Positional[Path]
    """Run directory (or checkpoint file)."""
    out: Path = Path("generated")
    """Output directory."""
    num: int = 16
    """How many samples."""
    seed: int = 0
    """First seed; sample i uses seed+i."""
    class_id: int | None = None
    """Class to generate (class-conditional methods); default: all classes in turn."""
    device: str = "auto"
    """cpu, cuda, mps or auto."""


@dataclass
class ExportArgs:
    """Export meshes from a trained run."""

    run: Positional[Path]
    """Run directory (or checkpoint file)."""
    out: Path = Path("exported")
    """Output directory."""
    format: tuple[Literal["glb", "obj", "ply", "stl"], ...] = ("glb",)
    """Mesh formats to write (stl: geometry only)."""
    num: int = 4
    """How many samples to export."""
    seed: int = 0
    """First seed."""
    class_id: int | None = None
    """Class to export (class-conditional methods)."""
    resolution: int | None = None
    """Marching-cubes grid per axis (tri-plane methods; default: the run's export.mesh_resolution). iggan's meshes follow
    its voxel grid."""
    level: float | Literal["auto"] | None = None
    """Iso-level of the surface: density for tri-plane methods (default: the run's export.mesh_density; "auto" = per
    sample, where its rendering reaches opacity 0.5), occupancy for iggan (default: the run's export.threshold)."""
    min_component: float | None = None
    """Drop connected components with less than this share of a mesh's faces (floaters; 0 keeps all; default: the
    run's export.mesh_min_component)."""
    device: str = "auto"
    """cpu, cuda, mps or auto."""


@dataclass
class InvertArgs:
    """PTI inversion of real images into a trained tri-plane generator (mvtriplane, 3dgp)."""

    run: Positional[Path]
    """Run directory of a trained mvtriplane or 3dgp generator."""
    images: Positional[tuple[Path, ...]]
    """Images to invert."""
    out: Path = Path("inverted")
    """Output directory."""
    steps_w: int = 500
    """Stage 1 (latent optimisation) steps."""
    steps_g: int = 350
    """Stage 2 (generator fine-tuning) steps."""
    device: str = "auto"
    """cpu, cuda, mps or auto."""


@dataclass
class ReconstructArgs:
    """Single image -> textured mesh with a trained `progressive` run."""

    run: Positional[Path]
    """Run directory of a trained progressive model."""
    images: Positional[tuple[Path, ...]]
    """Images (or folders of images) to reconstruct."""
    out: Path = Path("reconstructed")
    """Output directory: NAME.glb (texture embedded), NAME-input.png (the network's input) and NAME.gif per image."""
    masks: tuple[Path, ...] = ()
    """Optional masks (same order as images) used to crop and centre; they always win over --segmenter."""
    segmenter: Literal["auto", "isnet", "grabcut", "colour"] = "auto"
    """How photos without a mask are segmented: isnet (IS-Net weights installed by `bash scripts/setup.sh
    segment`), grabcut (OpenCV), colour (border colours; no weights, nothing to install); auto = the first
    of these that is installed."""
    input_colours: float = 1.0
    """Blend the input's own colours into the texture where the mesh is visible from the input's (estimated)
    camera: 1 = the input's colours there, 0 = the network's texture only."""
    crop: Literal["object", "none"] = "object"
    """object: crop and centre each image's object to the size the training objects have (photos). none: use square
    images as given, for inputs already framed like the training renders (e.g. `unflat dataset synth` views):
    their object's size in the frame tells the network its scale, which a crop would discard."""
    batch_size: int = 16
    """Images per forward pass."""
    turntable: bool = True
    """Also render a turntable GIF of each mesh (--no-turntable: meshes only; on CPU the turntables are most of the time, e.g. 8.0 s vs 0.2 s for 8 images of a small run)."""
    turntable_frames: int = 36
    """Frames of each turntable (one full turn)."""
    turntable_resolution: int = 256
    """Turntable frame size in pixels."""
    device: str = "auto"
    """cpu, cuda, mps or auto."""


def _loaded(run: Path, device: str):
    from unflat.runs import load_run

    return load_run(run, device)


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 2**63 - 2**32:  # sample i uses seed + i, seeded into a 64-bit generator
        raise UserError(f"--seed must be in [0, 2**63 - 2**32), got {seed}")


def _check_class_id(class_id: int | None, method) -> None:
    info = method.info
    classes = info.num_classes
    if class_id is not None and classes and not 0 <= class_id < classes:
        names = ", ".join(f"{i}={n}" for i, n in enumerate(info.class_names[:8]))
        raise UserError(f"--class-id must be in [0, {classes}) for this run ({names}), got {class_id}")


def _require(method, contract: type[T], what: str) -> T:
    """``method`` as the contract a command needs (``unflat.methods.base``), or a one-line error."""
    if not isinstance(method, contract):
        raise UserError(f"method '{method.name}' does not support {what}")
    return method


def cmd_generate(args: list[str]) -> int:
    from unflat.methods.base import Generator3D

    a = parse(GenerateArgs, with_model(args), "unflat generate", (GenerateArgs.__doc__ or "") + MODEL_HELP)
    _positive(num=a.num)
    _check_seed(a.seed)
    check_output_dir(a.out)
    loaded = _loaded(a.run, a.device)
    _check_class_id(a.class_id, loaded.method)
    generator = _require(loaded.method, Generator3D, "generate")
    paths = generator.generate(claim_output_dir(a.out, "generate"), a.num, a.seed, a.class_id)
    print(f"wrote {len(paths)} files to {a.out}")
    return 0


def cmd_export(args: list[str]) -> int:
    a = parse(ExportArgs, with_model(args), "unflat export", (ExportArgs.__doc__ or "") + MODEL_HELP)
    _positive(num=a.num)
    _check_seed(a.seed)
    check_output_dir(a.out)
    loaded = _loaded(a.run, a.device)
    _check_class_id(a.class_id, loaded.method)
    loaded.method.with_export_settings(resolution=a.resolution, level=a.level, min_component=a.min_component)
    start = time.perf_counter()
    paths = loaded.method.export(claim_output_dir(a.out, "export"), a.num, a.seed, a.class_id, a.format)
    from unflat.export.summary import level_summary, mesh_summary

    meshes = [p for p in paths if Path(p).suffix.lower() in (".glb", ".obj", ".ply", ".stl")]
    summary = mesh_summary(paths, a.num) if meshes else f"{len(paths)} files"
    levels = level_summary(a.out)
    summary += f"; {levels}" if levels else ""
    print(f"exported {summary} to {a.out} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_invert(args: list[str]) -> int:
    from unflat.methods.base import Invertible

    from unflat.data.image_files import readable_image_paths

    a = parse(InvertArgs, with_model(args), "unflat invert", (InvertArgs.__doc__ or "") + MODEL_HELP)
    images = readable_image_paths(list(a.images))
    check_output_dir(a.out)
    loaded = _loaded(a.run, a.device)
    generator = _require(loaded.method, Invertible, "PTI inversion (use an mvtriplane or 3dgp run)")
    start = time.perf_counter()
    written = generator.invert(images, claim_output_dir(a.out, "invert"), a.steps_w, a.steps_g)
    print(f"wrote {len(written)} files for {len(images)} image{'s' if len(images) != 1 else ''} to {a.out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_reconstruct(args: list[str]) -> int:
    from unflat.methods.base import Reconstructor

    a = parse(ReconstructArgs, with_model(args), "unflat reconstruct", (ReconstructArgs.__doc__ or "") + MODEL_HELP)
    check_output_dir(a.out)
    loaded = _loaded(a.run, a.device)
    reconstructor = _require(loaded.method, Reconstructor, "reconstruct (use a progressive run)")
    for name, value in (("batch-size", a.batch_size), ("turntable-frames", a.turntable_frames),
                        ("turntable-resolution", a.turntable_resolution)):
        if value <= 0:
            raise UserError(f"--{name} must be > 0, got {value}")
    segmenter = a.segmenter
    if not a.masks:
        from unflat.data.segment import cv2_available, resolve_method
        from unflat.data.segment_isnet import find_model, isnet_available

        if segmenter == "isnet" and not isnet_available():
            raise UserError("--segmenter isnet: IS-Net is not installed (needs onnxruntime and weights from "
                            "`bash scripts/setup.sh segment`); use --segmenter auto, grabcut or colour")
        if segmenter == "grabcut" and not cv2_available():
            raise UserError("--segmenter grabcut needs OpenCV (pip install opencv-python-headless); "
                            "use --segmenter auto or colour")
        segmenter = resolve_method(segmenter)
        print(f"segmenting photos with {segmenter}" + (f" ({find_model()})" if segmenter == "isnet" else ""))
    start = time.perf_counter()
    written = reconstructor.reconstruct(list(a.images), claim_output_dir(a.out, "reconstruct"), list(a.masks) or None, a.batch_size, turntable=a.turntable,
                 turntable_frames=a.turntable_frames, turntable_resolution=a.turntable_resolution,
                 input_colours=a.input_colours, segmenter=segmenter, crop=a.crop)
    meshes = sum(1 for path in written if Path(path).suffix == ".glb")
    print(f"wrote {meshes} textured mesh{'es' if meshes != 1 else ''} to {a.out} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_module(module: str, function: str, what: str) -> Callable[[list[str]], int]:
    """A sub-command implemented by ``module.function(argv) -> int`` (evaluate, view, bench, demo)."""

    def run(args: list[str]) -> int:
        return int(getattr(_import(module, what), function)(args) or 0)

    return run


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "demo": (cmd_module("unflat.demo", "main", "`unflat demo`"), "the pipeline on a CPU in minutes: shipped models on photos and renders -> textured GLBs, new shapes, train + resume"),
    "dataset": (cmd_dataset, "make datasets: synth | render | images | from-generator"),
    "train": (cmd_train, "train a method (iggan, mvtriplane, 3dgp, progressive, ...) or resume a run"),
    "generate": (cmd_generate, "sample a trained generator: images, depth, meshes"),
    "invert": (cmd_invert, "PTI inversion of real images (mvtriplane, 3dgp)"),
    "reconstruct": (cmd_reconstruct, "single image -> textured GLB with a progressive run"),
    "export": (cmd_export, "export meshes (GLB/OBJ/PLY) from a run"),
    "models": (cmd_module("unflat.zoo.commands", "main", "`unflat models`"), "trained models that ship with unflat; pack a run into one"),
    "evaluate": (cmd_module("unflat.evaluate", "main", "`unflat evaluate`"), "metrics of a run against a dataset -> metrics.json + report"),
    "view": (cmd_module("unflat.export.viewer.cli", "main", "`unflat view`"), "local web viewer for runs and outputs (127.0.0.1)"),
    "bench": (cmd_module("unflat.bench", "main", "`unflat bench`"), "run benchmarks (results: benchmarks/results/history.json -> BENCHMARKS.md)"),
}


def print_help() -> None:
    print(f"unflat {__version__}: learn 3D from flat images\n")
    print("usage: unflat [--debug] COMMAND [options]   (unflat COMMAND --help for details)\n\ncommands:")
    for name, (_, text) in COMMANDS.items():
        print(f"  {name:<12} {text}")
    print("\n  --debug      show full tracebacks for errors\n  --version    print the version")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("UNFLAT_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    if not args or args[0] in ("-h", "--help", "help"):
        print_help()
        return 0
    if args[0] == "--version":
        print(__version__)
        return 0
    if args[0] not in COMMANDS:
        print(f"unflat: unknown command '{args[0]}' (see `unflat --help`)", file=sys.stderr)
        return 2
    handler = COMMANDS[args[0]][0]
    if not debug:
        from unflat.engine.progress import warnings_as_notes

        warnings_as_notes()
    try:
        return handler(args[1:])
    except UserError as exc:
        if debug:
            raise
        print(f"unflat {args[0]}: error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, NotBuiltYet) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 (the catch-all: a user never sees a traceback without --debug)
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:  # a full disk, quota or file-size limit
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"unflat {args[0]}: error: {where}could not write ({exc.strerror}); free disk space and run again",
                  file=sys.stderr)
        else:
            print(f"unflat {args[0]}: error: {_one_line(exc)} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    """An unexpected exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
