"""unflat's own feature network for distribution metrics, trained offline on a dataset's renders.

The IG-GAN paper computed its FIDs with an Inception network retrained to classify its own
renders, because ImageNet features judged renders poorly. unflat does the same by default (no
standard weights can be downloaded here): a compact ResNet classifies an image's category and
its quantised viewpoint (azimuth and elevation bins); its globally pooled last stage is the
feature vector. Numbers computed on it are labelled "domain backbone" everywhere and are not
comparable to published Inception-v3 numbers.

Training goes through the engine: ``unflat train backbone`` (``unflat.methods.backbone``; from Python,
``unflat.methods.backbone.train_backbone_from_dataset``). This module holds the network, its targets, the
held-out split and accuracy, and its files.

Files: ``NAME.safetensors`` (weights, with the config and accuracies in its metadata) and a
``NAME.json`` sidecar (name, weights hash, held-out accuracy, training settings) for people.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.errors import UserError
from unflat.pretrained import MissingWeightsError, hash_state_dict

@dataclass
class DomainBackboneConfig:
    """Architecture of the domain backbone."""

    resolution: int = 64
    """Images are resized to resolution x resolution before the network."""
    widths: tuple[int, ...] = (32, 64, 128, 256)
    """Channels of each stage; each stage halves the spatial size. The last one is the feature size."""
    blocks_per_stage: int = 1
    """Residual blocks per stage."""
    num_classes: int = 1
    """Categories of the category head."""
    azimuth_bins: int = 12
    """Azimuth classes over [-180, 180) degrees."""
    elevation_bins: int = 6
    """Elevation classes over [-90, 90] degrees."""

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]


class ResidualBlock(nn.Module):
    """Pre-activation residual block with GroupNorm (batch-independent, so features of an image do
    not depend on what else is in the batch)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.norm2 = nn.GroupNorm(min(8, out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, stride) if stride != 1 or in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(F.silu(self.norm1(x)))
        y = self.conv2(F.silu(self.norm2(y)))
        return self.skip(x) + y


class DomainBackbone(nn.Module):
    """Compact ResNet: images [B,3,H,W] in [0,1] -> features [B,widths[-1]]; heads give logits."""

    def __init__(self, config: DomainBackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Conv2d(3, config.widths[0], 3, 1, 1)
        stages, channels = [], config.widths[0]
        for width in config.widths:
            blocks = [ResidualBlock(channels, width, 2)]
            blocks += [ResidualBlock(width, width, 1) for _ in range(config.blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.final_norm = nn.GroupNorm(min(8, channels), channels)
        self.category_head = nn.Linear(channels, config.num_classes)
        self.azimuth_head = nn.Linear(channels, config.azimuth_bins)
        self.elevation_head = nn.Linear(channels, config.elevation_bins)

    @property
    def name(self) -> str:
        c = self.config
        return f"unflat-domain-resnet-{c.resolution}px-{c.feature_dim}d"

    @property
    def weights_hash(self) -> str:
        return hash_state_dict(self.state_dict())

    def _prepare(self, images: Tensor) -> Tensor:
        """[B,3,H,W] in [0,1] -> [-1,1] at the network's resolution."""
        r = self.config.resolution
        if images.shape[-2:] != (r, r):
            images = F.interpolate(images, size=(r, r), mode="bilinear", align_corners=False, antialias=True)
        return images * 2 - 1

    def stage_features(self, images: Tensor) -> list[Tensor]:
        """Activations after each stage: list of [B,widths[i],r/2^(i+1),r/2^(i+1)]."""
        x = self.stem(self._prepare(images))
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, images: Tensor) -> Tensor:
        """images: [B,3,H,W] in [0,1] -> pooled features [B,D]."""
        last = self.stage_features(images)[-1]
        return F.silu(self.final_norm(last)).mean(dim=(2, 3))

    def heads(self, features: Tensor) -> dict[str, Tensor]:
        """features [B,D] -> logits {"category": [B,C], "azimuth": [B,A], "elevation": [B,E]}."""
        return {
            "category": self.category_head(features),
            "azimuth": self.azimuth_head(features),
            "elevation": self.elevation_head(features),
        }


# ---- viewpoint bins ----------------------------------------------------------------------------------
def azimuth_bins(azimuth_deg: Tensor, bins: int) -> Tensor:
    """Azimuth in degrees (any range) -> bin in [0,bins) over [-180,180)."""
    wrapped = torch.remainder(azimuth_deg + 180.0, 360.0)
    return (wrapped / (360.0 / bins)).long().clamp(0, bins - 1)


def elevation_bins(elevation_deg: Tensor, bins: int) -> Tensor:
    """Elevation in degrees [-90,90] -> bin in [0,bins)."""
    return ((elevation_deg + 90.0) / (180.0 / bins)).long().clamp(0, bins - 1)


# ---- training -----------------------------------------------------------------------------------------
@dataclass
class BackboneTrainingReport:
    """Held-out accuracy of a trained domain backbone."""

    category_accuracy: float
    azimuth_accuracy: float
    elevation_accuracy: float
    azimuth_within_one_bin: float
    num_train: int
    num_held_out: int
    steps: int
    seconds: float
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _held_out_split(n: int, groups: np.ndarray | None, fraction: float, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train/held-out indices; whole groups (e.g. all views of one shape) go to one side so the
    accuracy is measured on objects the network never saw."""
    if groups is None:
        groups = np.arange(n)
    unique = np.unique(groups)
    held = generator.choice(unique, size=max(1, int(round(len(unique) * fraction))), replace=False) if len(unique) > 1 else unique[:0]
    is_held = np.isin(groups, held)
    train, test = np.flatnonzero(~is_held), np.flatnonzero(is_held)
    if len(test) == 0:  # one group only: hold out images instead
        perm = generator.permutation(n)
        cut = max(1, int(round(n * fraction)))
        train, test = np.sort(perm[cut:]), np.sort(perm[:cut])
    return train, test


def _load_batch(images, index: np.ndarray, device: torch.device) -> Tensor:
    """uint8 [N,H,W,3] array-like rows -> float [B,3,H,W] in [0,1] on device."""
    order = np.argsort(index)
    rows = np.ascontiguousarray(np.asarray(images[index[order]]))[np.argsort(order)]  # sorted reads for mmap
    return torch.from_numpy(rows).to(device).permute(0, 3, 1, 2).contiguous().float() / 255.0


def _augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Small random shifts and brightness changes so features are not tied to exact pixels."""
    b, _, h, w = images.shape
    pad = max(1, h // 16)
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    shifted = padded[:, :, dy : dy + h, dx : dx + w]
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    return (shifted * gain.to(images.device)).clamp(0, 1)


@torch.no_grad()
def _accuracy(model: DomainBackbone, images, index: np.ndarray, targets: dict[str, Tensor], device: torch.device, batch_size: int) -> dict[str, float]:
    model.eval()
    correct = {k: 0 for k in targets}
    near = 0
    for start in range(0, len(index), batch_size):
        idx = index[start : start + batch_size]
        logits = model.heads(model(_load_batch(images, idx, device)))
        for key in targets:
            pred = logits[key].argmax(1).cpu()
            correct[key] += int((pred == targets[key][idx]).sum())
            if key == "azimuth":
                bins = model.config.azimuth_bins
                gap = (pred - targets[key][idx]).abs()
                near += int((torch.minimum(gap, bins - gap) <= 1).sum())
    total = max(1, len(index))
    return {**{k: v / total for k, v in correct.items()}, "azimuth_within_one_bin": near / total}


# ---- files ------------------------------------------------------------------------------------------
def save_domain_backbone(model: DomainBackbone, path: str | Path, report: BackboneTrainingReport | None = None, source: dict | None = None) -> Path:
    """Write ``path`` (.safetensors; config and accuracy in its metadata) and a .json sidecar.
    Returns the weights path."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = {
        "name": model.name,
        "weights_hash": hash_state_dict(state),
        "kind": "domain backbone",
        "config": asdict(model.config),
        "held_out_accuracy": None if report is None else report.as_dict(),
        "source": source or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"unflat_domain_backbone": json.dumps(info)})
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return path


class BackboneFileError(UserError, ValueError):
    """A domain backbone file that is damaged or not one (a ValueError too, as before)."""


def load_domain_backbone(path: str | Path, device: str | torch.device = "cpu") -> tuple[DomainBackbone, dict]:
    """Load a saved domain backbone -> (model in eval mode, its info dict). The stored weights hash
    is checked against the weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"domain backbone weights {path} not found; train one with `unflat train backbone --data DIR --out {path}`"
        )
    retrain = "re-make it with `unflat train backbone --data DIR`"
    try:  # a cut or foreign file makes safetensors raise its own error types
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001
        raise BackboneFileError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc}); {retrain}") from None
    if "unflat_domain_backbone" not in metadata:
        raise BackboneFileError(f"{path}: not an unflat domain backbone file (no 'unflat_domain_backbone' metadata); {retrain}")
    try:
        info = json.loads(metadata["unflat_domain_backbone"])
        config = DomainBackboneConfig(**{**info["config"], "widths": tuple(info["config"]["widths"])})
        recorded = str(info["weights_hash"])
        model = DomainBackbone(config)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise BackboneFileError(f"{path}: field 'unflat_domain_backbone' of the metadata is damaged "
                                f"({type(exc).__name__}: {exc}); {retrain}") from None
    if hash_state_dict(state) != recorded:
        raise BackboneFileError(f"{path}: weights do not match their recorded hash {recorded} (file corrupt?); {retrain}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise BackboneFileError(f"{path}: weights do not fit the recorded config ({str(exc).splitlines()[-1].strip()}); "
                                f"{retrain}") from None
    return model.to(device).eval().requires_grad_(False), info
