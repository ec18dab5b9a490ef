"""3DGP's learned camera distribution: a prior, a class-conditional camera generator, and its regularisers.

In-the-wild images are not taken from one known camera distribution, so 3DGP learns it: camera
parameters are drawn from a wide prior and a small network maps them (with the class and the latent
code) to the posterior parameters that are rendered. Every output is squashed into the prior's bounds,
so cameras always stay valid. Two regularisers keep the posterior from collapsing onto one easy view:
a per-parameter earth mover's distance to the prior (annealed in) and a pull of the mean viewing
angles towards the prior's mean.

Parameters (one row per camera, ``CAMERA_PARAMS`` order)::

    azimuth (rad), elevation (rad), radius, fov (deg), look-at azimuth (rad), look-at elevation (rad), look-at radius

Angles follow unflat's orbit convention (`unflat.cameras`): azimuth 0 looks from +Z, elevation > 0 is
above the XZ plane. The look-at point is a point in a ball of radius ``look_at_radius`` about the origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.cameras import Cameras, fov_to_focal, look_at, orbit_to_eye
from unflat.nets.stylegan2 import EqualLinear

CAMERA_PARAMS = ("azimuth", "elevation", "radius", "fov", "look_at_azimuth", "look_at_elevation", "look_at_radius")
AZ, EL, RADIUS, FOV, LA_AZ, LA_EL, LA_R = range(7)


@dataclass(frozen=True)
class CameraPrior:
    """Bounds of the camera prior (and of the learned posterior). Angles in degrees here."""

    azimuth_range: tuple[float, float] = (-90.0, 90.0)
    elevation_range: tuple[float, float] = (-45.0, 45.0)
    radius: float = 2.0
    fov_range: tuple[float, float] = (10.0, 45.0)
    look_at_radius: float = 0.4

    def bounds(self) -> tuple[Tensor, Tensor]:
        """Lower and upper bounds [7] in parameter units (radians for angles)."""
        rad = math.radians
        lo = [rad(self.azimuth_range[0]), rad(self.elevation_range[0]), self.radius, self.fov_range[0], -math.pi, -math.pi / 2, 0.0]
        hi = [rad(self.azimuth_range[1]), rad(self.elevation_range[1]), self.radius, self.fov_range[1], math.pi, math.pi / 2, self.look_at_radius]
        return torch.tensor(lo), torch.tensor(hi)

    def sample(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> Tensor:
        """[n,7] prior samples: angles and fov uniform in their ranges, look-at point uniform in direction
        (area-uniform on the sphere) with its radius uniform in [0, look_at_radius]."""
        lo, hi = self.bounds()
        u = torch.rand(n, 7, generator=generator)
        params = lo + u * (hi - lo)
        params[:, LA_EL] = torch.asin(u[:, LA_EL] * 2 - 1)  # area-uniform direction
        return params.to(device)

    def mean_angles(self) -> Tensor:
        """[2] the prior's mean azimuth and elevation (radians)."""
        lo, hi = self.bounds()
        return (lo[[AZ, EL]] + hi[[AZ, EL]]) / 2

    def normalise(self, params: Tensor) -> Tensor:
        """Parameters -> [0, 1] per coordinate (constant coordinates -> 0)."""
        lo, hi = (b.to(params.device) for b in self.bounds())
        return (params - lo) / (hi - lo).clamp_min(1e-8)

    def squash(self, raw: Tensor) -> Tensor:
        """Unbounded network outputs -> parameters inside the bounds (sigmoid)."""
        lo, hi = (b.to(raw.device) for b in self.bounds())
        return lo + torch.sigmoid(raw) * (hi - lo)


def params_to_cameras(params: Tensor) -> Cameras:
    """[B,7] camera parameters -> Cameras (OpenCV cam2world looking from the orbit point at the look-at point)."""
    deg = torch.rad2deg
    eye = orbit_to_eye(deg(params[:, AZ]), deg(params[:, EL]), params[:, RADIUS])
    target = orbit_to_eye(deg(params[:, LA_AZ]), deg(params[:, LA_EL]), params[:, LA_R])
    cam2world = look_at(eye, target)
    focal = fov_to_focal(params[:, FOV])
    half = torch.full_like(focal, 0.5)
    return Cameras(cam2world, torch.stack([focal, focal, half, half], -1))


def _normalise_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class _ParamsMLP(nn.Module):
    """params [B,k] (+ class embedding, + z embedding) -> raw outputs [B,m]: the public 3DGP softplus MLP,
    with equalised-learning-rate layers whose ``lr_multiplier`` slows the camera down relative to G."""

    def __init__(self, in_params: int, out_params: int, hidden: int, embed: int, num_classes: int, z_dim: int,
                 lr_multiplier: float) -> None:
        super().__init__()
        lin = lambda i, o: EqualLinear(i, o, lr_multiplier=lr_multiplier)  # noqa: E731
        self.num_classes = num_classes
        self.project_params = lin(in_params, hidden)
        self.embed_class = lin(num_classes, embed) if num_classes > 1 else None
        self.project_z = lin(z_dim, embed) if z_dim > 0 else None
        width = hidden + (embed if self.embed_class is not None else 0) + (embed if self.project_z is not None else 0)
        self.hidden = lin(width, hidden)
        self.out = lin(hidden, out_params)

    def forward(self, params: Tensor, class_ids: Tensor | None, z: Tensor | None) -> Tensor:
        parts = [F.softplus(self.project_params(params))]
        if self.embed_class is not None:
            ids = torch.zeros(len(params), dtype=torch.long, device=params.device) if class_ids is None else class_ids
            onehot = F.one_hot(ids.long().to(params.device), self.num_classes).to(params.dtype)
            parts.append(_normalise_2nd_moment(F.softplus(self.embed_class(onehot))))
        if self.project_z is not None:
            if z is None:
                raise ValueError("this camera generator needs the latent z")
            parts.append(_normalise_2nd_moment(F.softplus(self.project_z(z))))
        return self.out(F.softplus(self.hidden(torch.cat(parts, 1))))


class CameraGenerator(nn.Module):
    """prior parameters [B,7] (+ class ids [B], latent z [B,z_dim]) -> posterior parameters [B,7].

    Two stages, as in the public 3DGP code: the camera position from the prior position and the class;
    then field of view and look-at point from the new position, the prior fov/look-at, the class and z.
    ``learn_*`` switches each group off (then the prior value passes through unchanged).
    ``lr_multiplier`` (0.1 in public 3DGP) scales the camera network's effective learning rate.
    """

    def __init__(self, prior: CameraPrior, num_classes: int = 1, z_dim: int = 0, hidden: int = 256, embed: int = 16,
                 learn_angles: bool = True, learn_radius: bool = False, learn_fov: bool = True,
                 learn_look_at: bool = True, lr_multiplier: float = 0.1) -> None:
        super().__init__()
        self.prior = prior
        self.z_dim = z_dim
        self.learn = {"angles": learn_angles, "radius": learn_radius, "fov": learn_fov, "look_at": learn_look_at}
        self.origin = _ParamsMLP(3, 3, hidden, embed, num_classes, 0, lr_multiplier)
        self.look = _ParamsMLP(7, 4, hidden, embed, num_classes, z_dim, lr_multiplier)

    def forward(self, prior_params: Tensor, class_ids: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        norm = self.prior.normalise(prior_params)
        origin_raw = self.origin(norm[:, [AZ, EL, RADIUS]], class_ids, None)  # [B,3]
        look_in = torch.cat([origin_raw, norm[:, [FOV, LA_AZ, LA_EL, LA_R]]], 1)
        look_raw = self.look(look_in, class_ids, z)  # [B,4]: fov, look-at az/el/radius
        raw = torch.cat([origin_raw, look_raw], 1)
        posterior = self.prior.squash(raw)
        keep = torch.zeros(7, dtype=torch.bool, device=prior_params.device)
        keep[[AZ, EL]] = not self.learn["angles"]
        keep[RADIUS] = not self.learn["radius"]
        keep[FOV] = not self.learn["fov"]
        keep[[LA_AZ, LA_EL, LA_R]] = not self.learn["look_at"]
        return torch.where(keep, prior_params, posterior)

    def sample(self, n: int, class_ids: Tensor | None = None, z: Tensor | None = None,
               device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> tuple[Tensor, Cameras]:
        """Prior draw -> posterior parameters [n,7] and their Cameras."""
        params = self(self.prior.sample(n, device, generator), class_ids, z)
        return params, params_to_cameras(params)


# ---------------------------------------------------------------------------------------------
# Regularisers against collapse
# ---------------------------------------------------------------------------------------------
# Per-parameter weights of the EMD regulariser in the public 3DGP config (model/3dgp.yaml, camera_adaptor.emd):
# origin angles 2.0, radius 0, fov 1e-4 (fov is in degrees), look-at 1e-4.
DEFAULT_EMD_WEIGHTS = (2.0, 2.0, 0.0, 1e-4, 1e-4, 1e-4, 1e-4)


def emd_1d(a: Tensor, b: Tensor) -> Tensor:
    """Squared-cost earth mover's distance between equal-size empirical distributions, per column.

    a, b: [N,K] -> [K]. In 1D the optimal transport plan matches sorted samples, so this equals the
    exact EMD with cost |x - y|^2 and uniform weights (what POT's emd2 on ot.dist computes in public 3DGP).
    """
    return (a.sort(dim=0).values - b.sort(dim=0).values).square().mean(dim=0)


def camera_emd_loss(posterior: Tensor, prior: Tensor, weights: tuple[float, ...] = DEFAULT_EMD_WEIGHTS) -> Tensor:
    """Weighted sum over parameters of emd_1d(posterior, prior): keeps the learned distribution wide."""
    return (emd_1d(posterior, prior) * posterior.new_tensor(weights)).sum()


def mean_angle_loss(posterior: Tensor, prior: CameraPrior) -> Tensor:
    """|| mean posterior (azimuth, elevation) - prior mean ||_2: stops the cameras drifting to one side."""
    mean = posterior[:, [AZ, EL]].mean(0)
    return (mean - prior.mean_angles().to(posterior.device) + 1e-8).square().sum().sqrt()


@torch.no_grad()
def camera_statistics(params: Tensor) -> dict[str, Tensor]:
    """Per-parameter values in readable units (degrees) for histograms: name -> [B]."""
    out = {}
    for i, name in enumerate(CAMERA_PARAMS):
        value = params[:, i].float()
        if name in ("azimuth", "elevation", "look_at_azimuth", "look_at_elevation"):
            value = torch.rad2deg(value)
        out[name] = value.detach()
    return out
