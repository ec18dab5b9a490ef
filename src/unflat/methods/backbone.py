"""`unflat train backbone`: the domain feature network for FID/KID/IS, trained through the engine.

The network is ``unflat.nets.domain_backbone.DomainBackbone`` (the IG-GAN paper's idea: a classifier
retrained on the dataset's own renders instead of ImageNet's Inception). It learns the dataset's
category and the viewpoint bins (azimuth, elevation) of its cameras. Whole shapes are held back:
the final held-out accuracies, measured on objects the network never saw, go into the file's
metadata and JSON sidecar, so a user can judge the features before trusting an FID made with them.

Training goes through the shared engine (checkpoints, exact resume, progress, metrics.jsonl,
``--eval-every`` held-out accuracy). At the end of training, and on `unflat export RUN`, it writes
the ``.safetensors`` + ``.json`` pair that ``DomainBackboneExtractor.load`` reads: ``RUN/backbone.safetensors``
and, by default, ``DATA/backbone.safetensors`` where `unflat evaluate` looks first.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from unflat.cameras import Cameras
from unflat.config import RunConfig
from unflat.data.format import Dataset, DatasetInfo, open_dataset
from unflat.data.loader import Batch
from unflat.errors import ConfigError, UserError
from unflat.methods.base import Method, Samples, TrainContext
from unflat.methods.registry import get_method_spec, register_method
from unflat.nets.domain_backbone import (
    BackboneTrainingReport,
    DomainBackbone,
    DomainBackboneConfig,
    _accuracy,
    _augment,
    _held_out_split,
    _load_batch,
    azimuth_bins,
    elevation_bins,
    load_domain_backbone,
    save_domain_backbone,
)

BACKBONE_FILE = "backbone.safetensors"


@dataclass
class BackboneConfig(RunConfig):
    """Train unflat's domain feature network (for FID/KID/IS/precision-recall) on a dataset."""

    resolution: int = 64
    """Images are resized to this size before the network (part of the backbone's name)."""
    widths: tuple[int, ...] = (32, 64, 128, 256)
    """Channels of each residual stage (each halves the image size); the last is the feature size."""
    blocks_per_stage: int = 1
    """Residual blocks per stage."""
    azimuth_bins: int = 12
    """Azimuth classes over [-180, 180) degrees, from the dataset's cameras."""
    elevation_bins: int = 6
    """Elevation classes over [-90, 90] degrees, from the dataset's cameras."""
    learning_rate: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to zero at max_steps)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_fraction: float = 0.1
    """Fraction of max_steps spent warming the learning rate up."""
    held_out_fraction: float = 0.1
    """Fraction of shapes (all their views) held back to measure accuracy on unseen objects."""
    augment: bool = True
    """Random small shifts and brightness changes, so features do not hinge on exact pixels."""
    install_to_data: bool = True
    """Also write DATA/backbone.safetensors (+ .json), where `unflat evaluate` and --eval-every look by default."""

    def validate(self) -> None:
        super().validate()
        if self.data is None:
            raise ConfigError("data", "the backbone is trained on a dataset: pass --data DIR")
        if self.resolution < 2 ** len(self.widths):
            raise ConfigError("resolution", f"{self.resolution} is too small for {len(self.widths)} stages (each halves it)")
        for name in ("azimuth_bins", "elevation_bins", "blocks_per_stage", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if not self.widths or min(self.widths) <= 0:
            raise ConfigError("widths", f"must be positive channel counts, got {self.widths}")
        if not 0 < self.held_out_fraction < 1:
            raise ConfigError("held_out_fraction", f"must be in (0, 1), got {self.held_out_fraction}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError("warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction}")


def warmup_cosine(step: int, total: int, warmup_fraction: float) -> float:
    """Learning-rate factor: linear from 1/warmup to 1 over the warm-up, then cosine to 0 at ``total``."""
    warmup = max(1, int(round(total * warmup_fraction)))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def viewpoint_targets(cameras: Cameras, config: DomainBackboneConfig) -> dict[str, Tensor]:
    """Azimuth/elevation bins [B] of each camera (orbit angles about the origin)."""
    azimuth, elevation, _ = cameras.to_orbit()
    return {"azimuth": azimuth_bins(azimuth, config.azimuth_bins), "elevation": elevation_bins(elevation, config.elevation_bins)}


@register_method("backbone", config=BackboneConfig, kind="helper",
                 description="domain feature network for FID/KID/IS (category + viewpoint classifier on a dataset)",
                 presets=lambda: {"tiny": tiny, "small": small, "paper": paper})
class BackboneMethod(Method):
    """Classifies category and viewpoint bins; its pooled features are the metric features."""

    helper_use = ("this run is a feature backbone, not a generator: pass its backbone.safetensors as "
                  "`unflat evaluate GENERATOR_RUN --backbone PATH`")

    def __init__(self, cfg: BackboneConfig, info: DatasetInfo, ctx: TrainContext) -> None:
        super().__init__(cfg, info, ctx)
        self.dataset: Dataset = open_dataset(cfg.data)
        self.model_config = DomainBackboneConfig(
            resolution=cfg.resolution, widths=tuple(cfg.widths), blocks_per_stage=cfg.blocks_per_stage,
            num_classes=max(1, info.num_classes), azimuth_bins=cfg.azimuth_bins, elevation_bins=cfg.elevation_bins,
        )
        self.model: DomainBackbone = self.add_network("backbone", DomainBackbone(self.model_config))
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.add_optimizer("backbone", optimizer, lambda step: warmup_cosine(step, cfg.max_steps, cfg.warmup_fraction))
        # Held-out shapes: a pure function of (dataset, seed), so a resumed run holds back the same ones.
        shape_ids = np.asarray(self.dataset.shape_ids)
        if len(np.unique(shape_ids)) < 2:
            raise UserError(f"{cfg.data}: the backbone needs at least 2 shapes to hold some back for its accuracy")
        _, self.held_out_index = _held_out_split(len(shape_ids), shape_ids, cfg.held_out_fraction, np.random.default_rng(cfg.seed))
        self.held_out_shapes = torch.from_numpy(np.unique(shape_ids[self.held_out_index])).to(self.device)
        self.train_seconds = 0.0  # of training steps in this process (reported; not checkpointed)
        self.steps_trained = 0

    # ---- training ------------------------------------------------------------------------------
    def targets(self, class_ids: Tensor, cameras: Cameras) -> dict[str, Tensor]:
        return {"category": class_ids.long(), **viewpoint_targets(cameras, self.model_config)}

    def train_step(self, batch: Batch, step: int) -> dict[str, float | Tensor]:
        started = time.perf_counter()
        self.steps_trained = step + 1
        keep = ~torch.isin(batch.shape_ids, self.held_out_shapes)
        if not bool(keep.any()):  # every row of this batch shows a held-out shape: nothing to learn from
            return {"train_rows": 0.0}
        images = (batch.images[keep] + 1) / 2
        if self.cfg.augment:
            # seeded from the global RNG, which the engine re-seeds every step (exact resume)
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
            images = _augment(images, generator)
        targets = self.targets(batch.class_ids[keep], batch.cameras[keep.nonzero()[:, 0]])
        with self.autocast():
            logits = self.model.heads(self.model(images))
        losses = {k: F.cross_entropy(logits[k].float(), targets[k]) for k in targets}
        loss = sum(losses.values())
        self.optimize("backbone", loss)
        self.train_seconds += time.perf_counter() - started
        with torch.no_grad():
            accuracy = {f"train_acc/{k}": (logits[k].argmax(1) == targets[k]).float().mean() for k in targets}
        return {"loss": loss.detach(), **{f"loss/{k}": v.detach() for k, v in losses.items()}, **accuracy,
                "train_rows": float(keep.sum())}

    def extra_state(self) -> dict:
        # wall-clock time stays out of checkpoints: they are equal bit for bit across resumes
        return {"steps_trained": self.steps_trained}

    def load_extra_state(self, state: dict) -> None:
        self.steps_trained = int(state.get("steps_trained", 0))

    # ---- held-out accuracy -------------------------------------------------------------------------
    def all_targets(self) -> dict[str, Tensor]:
        """Targets of every dataset image (CPU tensors [N])."""
        return self.targets(torch.from_numpy(np.array(self.dataset.labels)), self.dataset.cameras)

    @torch.no_grad()
    def held_out_report(self) -> BackboneTrainingReport:
        was_training = self.model.training
        accuracy = _accuracy(self.model, self.dataset.images, self.held_out_index, self.all_targets(), self.device,
                             self.cfg.batch_size)
        self.model.train(was_training)
        return BackboneTrainingReport(
            category_accuracy=accuracy["category"],
            azimuth_accuracy=accuracy["azimuth"],
            elevation_accuracy=accuracy["elevation"],
            azimuth_within_one_bin=accuracy["azimuth_within_one_bin"],
            num_train=len(self.dataset) - len(self.held_out_index),
            num_held_out=len(self.held_out_index),
            steps=self.steps_trained,
            seconds=self.train_seconds,
            extra={"held_out_shapes": len(self.held_out_shapes), "chance_category": 1 / self.model_config.num_classes,
                   "chance_azimuth": 1 / self.model_config.azimuth_bins,
                   "chance_elevation": 1 / self.model_config.elevation_bins},
        )

    def held_out_accuracy(self) -> dict[str, float]:
        """Scalars for --eval-every and the end of training."""
        report = self.held_out_report()
        return {"held_out/category": report.category_accuracy, "held_out/azimuth": report.azimuth_accuracy,
                "held_out/elevation": report.elevation_accuracy, "held_out/azimuth_within_one_bin": report.azimuth_within_one_bin}

    # ---- files ---------------------------------------------------------------------------------------
    def write_backbone(self, path: Path) -> tuple[Path, BackboneTrainingReport]:
        """Weights + config + held-out accuracy -> ``path`` (.safetensors) and its .json sidecar."""
        report = self.held_out_report()
        manifest_files = self.dataset.manifest.get("files", {})
        source = {
            "dataset": str(Path(self.cfg.data).resolve()),
            "images_sha256": manifest_files.get("images.npy", {}).get("sha256"),
            "class_names": list(self.dataset.info.class_names),
            "trained_by": "unflat train backbone",
            "seed": self.cfg.seed,
        }
        return save_domain_backbone(self.model, path, report, source), report

    def on_train_end(self, run_dir: Path) -> dict[str, float]:
        """Called by the engine when training finishes: writes RUN/backbone.safetensors (and
        DATA/backbone.safetensors) and returns the held-out accuracies to log."""
        path, report = self.write_backbone(Path(run_dir) / BACKBONE_FILE)
        written = [path]
        if self.cfg.install_to_data:
            target = Path(self.cfg.data) / BACKBONE_FILE
            try:
                if not _replaceable_backbone(target) or not _replaceable_backbone(target.with_suffix(".json")):
                    raise OSError(0, f"{target} (or its .json) exists and was not written by unflat; not replaced")
                shutil.copyfile(path, target)
                shutil.copyfile(path.with_suffix(".json"), target.with_suffix(".json"))
                written.append(target)
            except OSError as exc:
                print(f"could not copy the backbone into the dataset ({exc.strerror}); pass --backbone {path} to `unflat evaluate`")
        print(f"backbone {self.model.name} (weights {self.model.weights_hash}) -> {', '.join(map(str, written))}\n"
              f"held-out accuracy on {report.num_held_out} images of unseen shapes: category {report.category_accuracy:.3f}, "
              f"azimuth {report.azimuth_accuracy:.3f} (within one bin {report.azimuth_within_one_bin:.3f}), "
              f"elevation {report.elevation_accuracy:.3f}")
        return self.held_out_accuracy()

    def export(self, out_dir: Path, num: int, seed: int, class_id: int | None = None,
               formats: tuple[str, ...] = ("glb",)) -> list[Path]:
        """`unflat export RUN`: the backbone file pair (the mesh options do not apply)."""
        path, _ = self.write_backbone(Path(out_dir) / BACKBONE_FILE)
        return [path, path.with_suffix(".json")]

    # ---- what the engine shows as samples ----------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, seed: int, class_ids: Tensor | None = None, cameras: Cameras | None = None) -> Samples:
        """n held-out images (chosen by ``seed``) framed green where the predicted category and
        azimuth bin (within one) are right, red otherwise. images: [n,3,H,W] in [-1,1]."""
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(self.held_out_index, size=n, replace=n > len(self.held_out_index)))
        images = _load_batch(self.dataset.images, index, self.device)
        was_training = self.model.training
        self.model.eval()
        logits = self.model.heads(self.model(images))
        self.model.train(was_training)
        targets = {k: v[torch.from_numpy(index)].to(self.device) for k, v in self.all_targets().items()}
        gap = (logits["azimuth"].argmax(1) - targets["azimuth"]).abs()
        gap = torch.minimum(gap, self.model_config.azimuth_bins - gap)
        right = (logits["category"].argmax(1) == targets["category"]) & (gap <= 1)
        colour = torch.where(right[:, None], images.new_tensor([0.1, 0.8, 0.1]), images.new_tensor([0.9, 0.1, 0.1]))
        framed = images.clone()
        border = max(1, images.shape[-1] // 16)
        frame = torch.ones_like(images[:1, :1], dtype=torch.bool)
        frame[..., border:-border, border:-border] = False
        framed = torch.where(frame, colour[:, :, None, None].expand_as(images), framed)
        return Samples(images=framed * 2 - 1, cameras=self.dataset.cameras[torch.from_numpy(index)],
                       class_ids=targets["category"])


# ---- presets ------------------------------------------------------------------------------------------
def tiny() -> BackboneConfig:
    """A step in milliseconds (tests)."""
    return BackboneConfig(max_steps=2, batch_size=8, resolution=16, widths=(8, 16), azimuth_bins=4, elevation_bins=2,
                          log_every=1, checkpoint_every=1, sample_every=0)


def small() -> BackboneConfig:
    """The CPU demo: 64x64 inputs, a slim network, a few minutes on 2 cores."""
    return BackboneConfig(max_steps=1500, batch_size=32, resolution=64, widths=(16, 32, 64, 128), log_every=25,
                          checkpoint_every=500, sample_every=500)


def paper() -> BackboneConfig:
    """GPU: deeper and wider at 128x128 for datasets of tens of thousands of renders."""
    return BackboneConfig(max_steps=20_000, batch_size=128, resolution=128, widths=(32, 64, 128, 256, 512),
                          blocks_per_stage=2, log_every=100, checkpoint_every=2000, sample_every=2000)


SPEC = get_method_spec(BackboneMethod)


def train_backbone_from_dataset(
    dataset_dir: str | Path,
    out_path: str | Path,
    steps: int = 2000,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    resolution: int = 64,
    seed: int = 0,
    run_dir: str | Path | None = None,
    **settings: Any,
) -> tuple[DomainBackbone, BackboneTrainingReport, Path]:
    """Train a domain backbone on an unflat dataset and save it as ``out_path`` (.safetensors + .json): the same
    training as ``unflat train backbone --data DATASET_DIR --max-steps STEPS`` (the engine's loop, this module's
    ``BackboneMethod``; whole shapes held out for the accuracy), from Python. ``batch_size`` is capped at the
    dataset's number of images.

    run_dir: where the engine writes the run (checkpoints, metrics.jsonl); default: a temporary folder, removed.
    settings: further ``BackboneConfig`` fields (e.g. ``widths=(16, 32)``, ``azimuth_bins=4``).
    Returns (model in eval mode on ``device``, held-out report, weights path).
    """
    from unflat.engine.logger import run_log_set_aside
    from unflat.engine.trainer import Trainer

    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        out_path = out_path.with_suffix(".safetensors")
    with tempfile.TemporaryDirectory(prefix="unflat-backbone-") as scratch, run_log_set_aside():
        run = Path(run_dir) if run_dir is not None else Path(scratch) / "run"
        images = len(open_dataset(dataset_dir))  # a small dataset: batches of all of it
        cfg = BackboneConfig(data=Path(dataset_dir), out=run, max_steps=steps, batch_size=min(batch_size, images),
                             device=str(device), resolution=resolution, seed=seed, install_to_data=False,
                             checkpoint_every=max(1, steps), log_every=max(1, steps // 20), sample_every=0,
                             tensorboard=False)
        cfg = dataclasses.replace(cfg, **settings)
        cfg.validate()
        result = Trainer(SPEC, cfg).fit()
        written = result.run_dir / BACKBONE_FILE
        if not written.is_file():
            raise UserError(f"backbone training on {dataset_dir} stopped at step {result.step} of {steps} "
                            f"without writing {written}")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(written, out_path)
        shutil.copyfile(written.with_suffix(".json"), out_path.with_suffix(".json"))
    model, info = load_domain_backbone(out_path, device)
    return model, BackboneTrainingReport(**info["held_out_accuracy"]), out_path


def _replaceable_backbone(path: Path) -> bool:
    """Absent, or a domain backbone file pair unflat wrote (safetensors metadata / JSON 'kind': 'domain backbone')."""
    if not path.exists():
        return True
    if path.suffix == ".json":
        from unflat.outputs import is_unflat_json

        return is_unflat_json(path, "weights_hash", "kind")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return "unflat_domain_backbone" in (handle.metadata() or {})
    except Exception:  # noqa: BLE001 - not a safetensors file at all
        return False
