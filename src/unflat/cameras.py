"""Cameras: the one convention every part of unflat uses.

World: right-handed, +Y up, objects centred at the origin inside [-1, 1]^3.
Camera: OpenCV axes (x right, y down, z forward), stored as a ``cam2world`` 4x4 matrix plus
intrinsics normalised by the image size, ``(fx/W, fy/H, cx/W, cy/H)``.

Orbit parameters: azimuth 0 puts the camera on the +Z axis looking at the origin; azimuth grows
counter-clockwise seen from above (towards +X); elevation is positive above the XZ plane.
``eye = radius * (cos(el) sin(az), sin(el), cos(el) cos(az))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# OpenCV -> OpenGL camera axes (flip y and z); used by renderers that speak OpenGL.
OPENCV_TO_OPENGL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def fov_to_focal(fov_deg: float | Tensor) -> Tensor:
    """Vertical field of view in degrees -> focal length normalised by image height."""
    fov = torch.as_tensor(fov_deg, dtype=torch.float32)
    return 0.5 / torch.tan(torch.deg2rad(fov) / 2)


def focal_to_fov(focal_normalised: Tensor) -> Tensor:
    """Focal length normalised by image size -> field of view in degrees."""
    return torch.rad2deg(2 * torch.atan(0.5 / focal_normalised))


def look_at(eye: Tensor, target: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """OpenCV cam2world matrices looking from ``eye`` [B,3] at ``target`` [B,3] -> [B,4,4]."""
    eye = eye.float()
    target = torch.zeros_like(eye) if target is None else target.float().expand_as(eye)
    up = eye.new_tensor([0.0, 1.0, 0.0]).expand_as(eye) if up is None else up.float().expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.cross(forward, up, dim=-1)
    # Looking straight up or down: any right vector orthogonal to forward will do.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    fallback = torch.cross(forward, eye.new_tensor([0.0, 0.0, 1.0]).expand_as(eye), dim=-1)
    right = torch.nn.functional.normalize(torch.where(degenerate, fallback, right), dim=-1)
    down = torch.cross(forward, right, dim=-1)
    cam2world = torch.eye(4, device=eye.device).repeat(eye.shape[0], 1, 1)
    cam2world[:, :3, 0] = right
    cam2world[:, :3, 1] = down
    cam2world[:, :3, 2] = forward
    cam2world[:, :3, 3] = eye
    return cam2world


def orbit_to_eye(azimuth_deg: Tensor, elevation_deg: Tensor, radius: Tensor | float) -> Tensor:
    """Azimuth/elevation in degrees and radius -> camera positions [B,3]."""
    az, el = torch.deg2rad(azimuth_deg.float()), torch.deg2rad(elevation_deg.float())
    radius = torch.as_tensor(radius, dtype=torch.float32, device=az.device)
    return torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], -1) * radius[..., None]


@dataclass
class Cameras:
    """A batch of pinhole cameras.

    cam2world: [B,4,4] OpenCV camera-to-world transforms.
    intrinsics: [B,4] (fx/W, fy/H, cx/W, cy/H).
    """

    cam2world: Tensor
    intrinsics: Tensor

    def __post_init__(self) -> None:
        if self.cam2world.ndim != 3 or self.cam2world.shape[1:] != (4, 4):
            raise ValueError(f"cam2world must be [B,4,4], got {tuple(self.cam2world.shape)}")
        if self.intrinsics.shape != (self.cam2world.shape[0], 4):
            raise ValueError(f"intrinsics must be [B,4], got {tuple(self.intrinsics.shape)}")

    def __len__(self) -> int:
        return self.cam2world.shape[0]

    def __getitem__(self, index: int | slice | Tensor) -> "Cameras":
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Cameras(self.cam2world[index], self.intrinsics[index])

    @property
    def device(self) -> torch.device:
        return self.cam2world.device

    def to(self, device: torch.device | str) -> "Cameras":
        return Cameras(self.cam2world.to(device), self.intrinsics.to(device))

    @staticmethod
    def cat(cameras: list["Cameras"]) -> "Cameras":
        return Cameras(torch.cat([c.cam2world for c in cameras]), torch.cat([c.intrinsics for c in cameras]))

    # ---- construction -------------------------------------------------------------------------
    @staticmethod
    def from_orbit(
        azimuth_deg: Tensor,
        elevation_deg: Tensor,
        radius: Tensor | float = 2.5,
        fov_deg: Tensor | float = 30.0,
        target: Tensor | None = None,
    ) -> "Cameras":
        """Cameras on a sphere around ``target`` (default: origin) looking at it."""
        eye = orbit_to_eye(azimuth_deg, elevation_deg, radius)
        if target is not None:
            eye = eye + target
        cam2world = look_at(eye, target)
        focal = fov_to_focal(fov_deg).to(eye.device).expand(eye.shape[0])
        half = torch.full_like(focal, 0.5)
        return Cameras(cam2world, torch.stack([focal, focal, half, half], -1))

    @staticmethod
    def sample_orbit(
        n: int,
        generator: torch.Generator | None = None,
        azimuth_range: tuple[float, float] = (-180.0, 180.0),
        elevation_range: tuple[float, float] = (-90.0, 90.0),
        radius: float = 2.5,
        fov_deg: float = 30.0,
        uniform_on_sphere: bool = True,
    ) -> "Cameras":
        """Random cameras: azimuth uniform in its range; elevation uniform in its range, or
        area-uniform on the sphere (sin(el) uniform) when ``uniform_on_sphere`` is set."""
        u = torch.rand(n, 2, generator=generator)
        az = azimuth_range[0] + u[:, 0] * (azimuth_range[1] - azimuth_range[0])
        if uniform_on_sphere:
            lo, hi = (math.sin(math.radians(e)) for e in elevation_range)
            el = torch.rad2deg(torch.asin((lo + u[:, 1] * (hi - lo)).clamp(-1, 1)))
        else:
            el = elevation_range[0] + u[:, 1] * (elevation_range[1] - elevation_range[0])
        return Cameras.from_orbit(az, el, radius, fov_deg)

    # ---- conversions --------------------------------------------------------------------------
    def to_orbit(self, target: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Azimuth (deg), elevation (deg), radius of each camera centre about ``target``."""
        eye = self.cam2world[:, :3, 3]
        if target is not None:
            eye = eye - target
        radius = eye.norm(dim=-1)
        elevation = torch.rad2deg(torch.asin((eye[:, 1] / radius.clamp_min(1e-12)).clamp(-1, 1)))
        azimuth = torch.rad2deg(torch.atan2(eye[:, 0], eye[:, 2]))
        return azimuth, elevation, radius

    @property
    def fov_deg(self) -> Tensor:
        """Vertical field of view in degrees [B]."""
        return focal_to_fov(self.intrinsics[:, 1])

    def world2cam(self) -> Tensor:
        """[B,4,4] inverse of cam2world (rigid, so computed in closed form)."""
        rot = self.cam2world[:, :3, :3]
        t = self.cam2world[:, :3, 3:]
        out = torch.eye(4, device=self.device, dtype=self.cam2world.dtype).repeat(len(self), 1, 1)
        out[:, :3, :3] = rot.transpose(1, 2)
        out[:, :3, 3:] = -rot.transpose(1, 2) @ t
        return out

    def opengl_cam2world(self) -> Tensor:
        """[B,4,4] camera pose with OpenGL axes (x right, y up, z backward), e.g. for pyrender."""
        return self.cam2world @ OPENCV_TO_OPENGL.to(self.device, self.cam2world.dtype)

    def intrinsics_matrix(self, height: int, width: int) -> Tensor:
        """[B,3,3] pixel-unit K matrix for an image of the given size."""
        k = torch.zeros(len(self), 3, 3, device=self.device)
        k[:, 0, 0] = self.intrinsics[:, 0] * width
        k[:, 1, 1] = self.intrinsics[:, 1] * height
        k[:, 0, 2] = self.intrinsics[:, 2] * width
        k[:, 1, 2] = self.intrinsics[:, 3] * height
        k[:, 2, 2] = 1
        return k

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points [B,N,3] -> (normalised image coords [B,N,2] in [0,1] across the image, depth [B,N]).

        Pixel coordinates are ``uv * (W, H)``; pixel centres sit at half-integers.
        """
        w2c = self.world2cam()
        cam = points @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
        z = cam[..., 2]
        safe_z = torch.where(z.abs() < 1e-8, torch.full_like(z, 1e-8), z)
        u = self.intrinsics[:, None, 0] * cam[..., 0] / safe_z + self.intrinsics[:, None, 2]
        v = self.intrinsics[:, None, 1] * cam[..., 1] / safe_z + self.intrinsics[:, None, 3]
        return torch.stack([u, v], -1), z

    def rays(self, height: int, width: int) -> tuple[Tensor, Tensor]:
        """Ray origins and unit directions through pixel centres, each [B, H*W, 3], row-major."""
        ys, xs = torch.meshgrid(
            (torch.arange(height, device=self.device, dtype=torch.float32) + 0.5) / height,
            (torch.arange(width, device=self.device, dtype=torch.float32) + 0.5) / width,
            indexing="ij",
        )
        x = (xs.reshape(1, -1) - self.intrinsics[:, 2:3]) / self.intrinsics[:, 0:1]
        y = (ys.reshape(1, -1) - self.intrinsics[:, 3:4]) / self.intrinsics[:, 1:2]
        dirs_cam = torch.stack([x, y, torch.ones_like(x)], -1)
        dirs = torch.nn.functional.normalize(dirs_cam @ self.cam2world[:, :3, :3].transpose(1, 2), dim=-1)
        origins = self.cam2world[:, None, :3, 3].expand_as(dirs)
        return origins, dirs

    # ---- storage ------------------------------------------------------------------------------
    def to_json(self) -> list[dict]:
        """One dict per camera, the dataset JSON schema's frame fields (see docs/cameras.md)."""
        return [
            {"cam2world": c2w.tolist(), "intrinsics": k.tolist()}
            for c2w, k in zip(self.cam2world.double().cpu(), self.intrinsics.double().cpu())
        ]

    def is_valid(self, atol: float = 1e-4) -> Tensor:
        """[B] bool: rotation orthonormal with det +1, finite values, positive focal lengths."""
        rot = self.cam2world[:, :3, :3]
        eye = torch.eye(3, device=self.device)
        ortho = (rot.transpose(1, 2) @ rot - eye).abs().amax(dim=(1, 2)) < atol
        det = (torch.linalg.det(rot) - 1).abs() < atol
        finite = torch.isfinite(self.cam2world).all(dim=(1, 2)) & torch.isfinite(self.intrinsics).all(dim=1)
        bottom = (self.cam2world[:, 3] - self.cam2world.new_tensor([0, 0, 0, 1])).abs().amax(dim=1) < atol
        return ortho & det & finite & bottom & (self.intrinsics[:, :2] > 0).all(dim=1)
