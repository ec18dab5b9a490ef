"""Monocular depth estimators for 3DGP's depth guidance (`unflat train depth` trains one: ``unflat.methods.depth``).

3DGP feeds a discriminator real images paired with depth from an off-the-shelf monocular estimator
(LeReS in the paper). unflat offers three sources, all giving the same *relative* depth format:

* ``gt``: ground-truth depth of embedded renders (``unflat dataset synth``), background set to a far plane;
* ``run``: a small U-Net that unflat trains itself on embedded renders with ground-truth depth
  (``unflat train depth --data SYNTH``), the offline default for photo datasets;
* ``standard``: a published estimator (MiDaS / DPT) whose code and weights are already on disk.

Relative depth format: [B,1,H,W] per-image min-max normalised to [-1, 1], -1 nearest, +1 farthest
(the public 3DGP code stores LeReS depth the same way: 16-bit per-image normalised, read as [-1, 1]).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.cameras import Cameras
from unflat.errors import UserError

# Objects live inside the unit-ish sphere around the origin (world convention: [-1,1]^3 with a margin), so
# "nothing hit" is placed at the far side of that sphere: |eye| + BACKGROUND_RADIUS.
BACKGROUND_RADIUS = 1.0


# ---------------------------------------------------------------------------------------------
# The relative depth format
# ---------------------------------------------------------------------------------------------
def normalise_relative(depth: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-image min-max to [-1, 1]: [B,1,H,W] -> [B,1,H,W] (-1 nearest). Constant maps become 0."""
    flat = depth.flatten(1)
    lo, hi = flat.amin(1), flat.amax(1)
    span = (hi - lo)
    out = (flat - lo[:, None]) / span.clamp_min(eps)[:, None] * 2 - 1
    out = torch.where(span[:, None] > eps, out, torch.zeros_like(out))
    return out.view_as(depth)


def ground_truth_relative(depth: Tensor, cameras: Cameras, mask: Tensor | None = None) -> Tensor:
    """Ground-truth camera-z depth [B,1,H,W] (0 where nothing was hit) -> relative depth [B,1,H,W].

    Background pixels get the far side of the object's bounding sphere, ``|eye| + 1``, so a render's
    backdrop reads as "far", as an estimator sees the backdrop of a photo.
    """
    hit = depth > 0 if mask is None else (mask > 0.5) & (depth > 0)
    far = cameras.cam2world[:, :3, 3].norm(dim=-1) + BACKGROUND_RADIUS
    filled = torch.where(hit, depth, far.view(-1, 1, 1, 1).to(depth.dtype).expand_as(depth))
    return normalise_relative(filled)


def align_scale_shift(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Least-squares scale s and shift t per image so that s * pred + t ~ target; returns the aligned pred.

    pred, target: [B,1,H,W]; mask: [B,1,H,W] weights (None = all pixels). MiDaS' scale-and-shift alignment.
    """
    w = torch.ones_like(pred) if mask is None else mask.to(pred.dtype)
    p, t, w = pred.flatten(1), target.flatten(1), w.flatten(1)
    a00, a01, a11 = (w * p * p).sum(1), (w * p).sum(1), w.sum(1)
    b0, b1 = (w * p * t).sum(1), (w * t).sum(1)
    det = a00 * a11 - a01 * a01
    ok = det.abs() > 1e-10
    safe = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
    shift = torch.where(ok, (-a01 * b0 + a00 * b1) / safe, b1 / a11.clamp_min(1e-10))
    return (scale[:, None] * p + shift[:, None]).view_as(pred)


def scale_shift_invariant_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """MiDaS' scale-and-shift-invariant MSE: mean over pixels of (align(pred) - target)^2."""
    aligned = align_scale_shift(pred, target, mask)
    err = (aligned - target).square()
    if mask is None:
        return err.mean()
    return (err * mask).sum() / mask.sum().clamp_min(1)


@torch.no_grad()
def relative_depth_error(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Scale/shift-aligned RMSE between relative depth maps [B,1,H,W] (the depth metric for estimators)."""
    return scale_shift_invariant_loss(pred.float(), target.float(), mask).sqrt()


# ---------------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------------
class DepthEstimator(Protocol):
    """images [B,3,H,W] in [-1,1] -> relative depth [B,1,H,W] in [-1,1] (-1 nearest)."""

    identity: str  # what produced the depth (name + weight hash); keys the depth cache

    def __call__(self, images: Tensor) -> Tensor: ...


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1),
        nn.GroupNorm(min(8, cout), cout),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, 1, 1),
        nn.GroupNorm(min(8, cout), cout),
        nn.SiLU(),
    )


class TinyDepthNet(nn.Module):
    """A small U-Net: images [B,3,H,W] in [-1,1] -> unnormalised relative depth [B,1,H,W].

    ``levels`` stride-2 stages of widths base, 2 base, 4 base ...; skip connections at every scale.
    """

    def __init__(self, base_channels: int = 16, levels: int = 3) -> None:
        super().__init__()
        widths = [base_channels * 2**i for i in range(levels + 1)]
        self.stem = _conv_block(3, widths[0])
        self.down = nn.ModuleList(_conv_block(widths[i], widths[i + 1], stride=2) for i in range(levels))
        self.up = nn.ModuleList(_conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        x = self.stem(images)
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


def module_fingerprint(module: nn.Module, name: str) -> str:
    """Hash of a network's class, name and weights (keys caches of its outputs)."""
    digest = hashlib.sha256(f"{type(module).__qualname__}:{name}".encode())
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class NetworkDepthEstimator:
    """Wraps a depth network (raw output: larger = farther) as a DepthEstimator, frozen, in eval mode.

    ``input_size``: images are resized to this square size before the network (None = as given);
    ``inverse``: the network predicts disparity (MiDaS/DPT), so its output is negated.
    """

    def __init__(self, net: nn.Module, name: str, input_size: int | None = None, inverse: bool = False,
                 mean: tuple[float, float, float] | None = None, std: tuple[float, float, float] | None = None) -> None:
        self.net = net.eval().requires_grad_(False)
        self.input_size, self.inverse = input_size, inverse
        self.mean, self.std = mean, std
        self.identity = f"{name}-{module_fingerprint(net, name)}"

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        x = images.to(self.device, torch.float32)
        if self.mean is not None and self.std is not None:  # [-1,1] -> [0,1] -> the net's normalisation
            mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
            std = x.new_tensor(self.std).view(1, 3, 1, 1)
            x = ((x + 1) / 2 - mean) / std
        if self.input_size is not None and (height, width) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        raw = self.net(x)
        if raw.ndim == 3:
            raw = raw[:, None]
        raw = -raw if self.inverse else raw
        if raw.shape[-2:] != (height, width):
            raw = F.interpolate(raw, size=(height, width), mode="bilinear", align_corners=False)
        return normalise_relative(raw.float())


# ---------------------------------------------------------------------------------------------
# Standard estimators, local weights only
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StandardDepthModel:
    hub_entry: str  # entry point in the MiDaS torch-hub repository
    weights_file: str  # the file torch hub caches under <TORCH_HOME>/hub/checkpoints/
    input_size: int


STANDARD_DEPTH_MODELS = {
    "midas_small": StandardDepthModel("MiDaS_small", "midas_v21_small_256.pt", 256),
    "dpt_hybrid": StandardDepthModel("DPT_Hybrid", "dpt_hybrid_384.pt", 384),
    "dpt_large": StandardDepthModel("DPT_Large", "dpt_large_384.pt", 384),
}
MIDAS_HUB_DIR = "intel-isl_MiDaS_master"


def _torch_home() -> Path:
    return Path(torch.hub.get_dir())


def load_standard_estimator(name: str, weights: Path | None = None, device: torch.device | str = "cpu") -> NetworkDepthEstimator:
    """A MiDaS/DPT estimator from its torch-hub code and weights already on disk (never downloads).

    Looks for the hub code in ``<TORCH_HOME>/hub/intel-isl_MiDaS_master`` and the weights at ``weights`` or
    ``<TORCH_HOME>/hub/checkpoints/<file>``; raises MissingWeightsError / UserError naming what is missing.
    """
    if name not in STANDARD_DEPTH_MODELS:
        raise UserError(f"unknown depth estimator '{name}' (choose from {', '.join(STANDARD_DEPTH_MODELS)})")
    model = STANDARD_DEPTH_MODELS[name]
    path = Path(weights) if weights is not None else _torch_home() / "checkpoints" / model.weights_file
    if not path.is_file():
        raise _missing_weights(name, path)
    repo = _torch_home() / MIDAS_HUB_DIR
    if not (repo / "hubconf.py").is_file():
        raise UserError(f"depth estimator '{name}' needs the MiDaS torch-hub code at {repo} (hubconf.py missing); "
                        "copy a checkout of isl-org/MiDaS there, or use --depth-source run (unflat train depth)")
    net = torch.hub.load(str(repo), model.hub_entry, source="local", pretrained=False, trust_repo=True)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return NetworkDepthEstimator(net.to(device), name, model.input_size, inverse=True,
                                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _missing_weights(name: str, path: Path) -> Exception:
    message = (f"weights for depth estimator '{name}' not found at {path}; put the file there (or pass its path), "
               "or train unflat's own estimator: unflat train depth --data <synth dataset with depth>")
    try:  # the shared error type when the metrics engineer's loader is present
        from unflat.pretrained import MissingWeightsError

        return MissingWeightsError(message)
    except ImportError:
        return UserError(message)


DepthSource = Literal["auto", "gt", "run", "standard"]
