"""`unflat train depth`: unflat's own monocular depth estimator (a helper: 3DGP's offline default depth source),
trained with MiDaS' scale-and-shift-invariant loss on renders with ground-truth depth. The networks and the
relative depth format are in ``unflat.nets.depth_estimator``."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unflat.cameras import Cameras
from unflat.config import RunConfig, require_positive
from unflat.data.format import DatasetInfo, open_dataset
from unflat.data.loader import Batch
from unflat.errors import ConfigError, UserError
from unflat.methods.base import Method, Samples, TrainContext
from unflat.methods.registry import get_method_spec, load_run, register_method
from unflat.nets.depth_estimator import (NetworkDepthEstimator, TinyDepthNet, ground_truth_relative, normalise_relative,
                                         scale_shift_invariant_loss)


@dataclass
class DepthConfig(RunConfig):
    """Train unflat's own monocular depth estimator on a dataset with ground-truth depth."""

    base_channels: int = 16
    """Width of the U-Net's first stage (doubles at each of the `levels` stride-2 stages)."""
    levels: int = 3
    """Number of stride-2 stages of the U-Net."""
    lr: float = 2e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    cosine_schedule: bool = True
    """Anneal the learning rate to 5% with a cosine over max_steps."""
    hflip: bool = True
    """Augment with horizontal flips (depth flips with the image)."""

    def validate(self) -> None:
        super().validate()
        require_positive(self, "base_channels", "levels", "lr")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay}")


@register_method("depth", config=DepthConfig, kind="helper",
                 description="unflat's own monocular depth estimator (3DGP's offline default), trained on renders with depth",
                 presets=lambda: {"tiny": _tiny, "small": _small, "paper": _paper})
class DepthEstimatorMethod(Method):
    """Trains TinyDepthNet with MiDaS' scale-and-shift-invariant loss on ground-truth relative depth."""

    def __init__(self, cfg: DepthConfig, info: DatasetInfo, ctx: TrainContext) -> None:
        super().__init__(cfg, info, ctx)
        if not info.has_depth:
            raise UserError("unflat train depth needs a dataset with ground-truth depth "
                            "(make one with: unflat dataset synth --category chair --out DIR)")
        self.cfg: DepthConfig = cfg
        self.net = self.add_network("depth", TinyDepthNet(cfg.base_channels, cfg.levels))
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = cfg.max_steps

        def cosine(step: int) -> float:
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)) if cfg.cosine_schedule else 1.0

        self.add_optimizer("depth", opt, schedule=cosine)

    def train_step(self, batch: Batch, step: int) -> dict[str, float | Tensor]:
        if batch.depth is None:
            raise UserError("this dataset has no depth.npy; unflat train depth needs ground-truth depth")
        target = ground_truth_relative(batch.depth, batch.cameras, batch.masks)
        images = batch.images
        if self.cfg.hflip:
            flip = torch.rand(len(images), device=images.device) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            target = torch.where(flip.view(-1, 1, 1, 1), target.flip(-1), target)
        with self.autocast():
            pred = self.net(images)
        loss = scale_shift_invariant_loss(pred.float(), target)
        self.optimize("depth", loss)
        return {"loss/ssi_mse": loss.detach(), "depth/rmse_aligned": loss.detach().sqrt()}

    def estimator(self) -> NetworkDepthEstimator:
        """A frozen copy of the trained network as a DepthEstimator (identity hashes its weights)."""
        return NetworkDepthEstimator(copy.deepcopy(self.net), "unflat-tinydepth")

    @torch.no_grad()
    def sample(self, n: int, seed: int, class_ids: Tensor | None = None, cameras: Cameras | None = None) -> Samples:
        """Predicted depth for n dataset images chosen by ``seed``; images = input | prediction | target."""
        if self.cfg.data is None:
            raise UserError("depth samples are predictions on dataset images: this run has no --data")
        dataset = open_dataset(self.cfg.data)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].sort().values.numpy()
        images = torch.from_numpy(np.ascontiguousarray(dataset.images[order])).permute(0, 3, 1, 2).float() / 127.5 - 1
        images = images.to(self.device)
        was_training = self.net.training
        self.net.eval()
        pred = normalise_relative(self.net(images).float())
        self.net.train(was_training)
        extras = {"input": images}
        tiles = [images, pred.expand(-1, 3, -1, -1)]
        if dataset.depth is not None:
            gt = torch.from_numpy(np.array(dataset.depth[order], dtype=np.float32))[:, None].to(self.device)
            masks = None if dataset.masks is None else torch.from_numpy(np.array(dataset.masks[order]))[:, None].float().div(255).to(self.device)
            target = ground_truth_relative(gt, dataset.cameras[torch.from_numpy(order)].to(self.device), masks)
            extras["target"] = target
            tiles.append(target.expand(-1, 3, -1, -1))
        # -1 (near) shows bright, as depth previews usually do.
        grid = torch.cat([tiles[0]] + [-t for t in tiles[1:]], dim=-1)
        return Samples(images=grid, depth=pred, extras=extras)


def _tiny() -> DepthConfig:
    return DepthConfig(max_steps=50, batch_size=8, base_channels=4, levels=2, log_every=10, checkpoint_every=50,
                       sample_every=0, lr=5e-3)


def _small() -> DepthConfig:
    return DepthConfig(max_steps=1500, batch_size=16, base_channels=16, levels=3, checkpoint_every=500, sample_every=500)


def _paper() -> DepthConfig:
    return DepthConfig(max_steps=20000, batch_size=32, base_channels=32, levels=4, lr=1e-3, checkpoint_every=2000,
                       sample_every=2000)


DEPTH_SPEC = get_method_spec(DepthEstimatorMethod)


def load_depth_run(run_dir: Path, device: torch.device | str = "cpu") -> NetworkDepthEstimator:
    """The estimator of a finished `unflat train depth` run."""
    loaded = load_run(Path(run_dir), torch.device(device) if isinstance(device, str) else device)
    if not isinstance(loaded.method, DepthEstimatorMethod):
        raise UserError(f"{run_dir} is a '{loaded.spec.name}' run, not an `unflat train depth` run")
    return loaded.method.estimator()
