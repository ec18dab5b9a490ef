"""RenderNet-style proxy neural renderer (Nguyen-Phuoc et al. 2018) as modified by IG-GAN (Sec. 4.1).

Two stages:

1. ``camera_frame_volume``: a rigid transform resamples the object-space voxel grid (R^3) into a grid
   aligned with the camera (2R^3: the paper embeds 64^3 into 128^3), trilinearly, with
   ``F.affine_grid`` / ``F.grid_sample``. Its axes are (depth, image rows, image columns), so looking
   along the first axis is looking through the camera.
2. ``RenderNet``: 3D convolutions (two stride-2 downsamplings, then 2 residual blocks), a projection
   unit (depth folded into channels + 1x1 convolution, as in RenderNet), 4 residual blocks in 2D and
   up/down-sampling to the image size; a linear output regressed onto images in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.cameras import Cameras


# ---------------------------------------------------------------------------------------------
# The rigid transform into the camera frame
# ---------------------------------------------------------------------------------------------
def camera_frame_scale_offset(cameras: Cameras, voxel_extent: float,
                              depth_extent: float | None = None) -> tuple[Tensor, Tensor]:
    """Per-camera half-extents (w_x, w_y, h) [B,3] and centre (o_x, o_y, d0) [B,3] of the camera grid
    in the OpenCV camera frame (see ``camera_frame_theta``)."""
    c2w = cameras.cam2world.float()
    k = cameras.intrinsics.float()
    eye, forward = c2w[:, :3, 3], c2w[:, :3, 2]
    d0 = -(eye * forward).sum(-1)  # depth of the origin's projection onto the optical axis
    if (d0 <= 0).any():
        raise ValueError("every camera must look towards the world origin (the object sits there)")
    h = math.sqrt(3.0) * voxel_extent if depth_extent is None else depth_extent
    scale = torch.stack([d0 * 0.5 / k[:, 0], d0 * 0.5 / k[:, 1], torch.full_like(d0, h)], -1)
    offset = torch.stack([(0.5 - k[:, 2]) * d0 / k[:, 0], (0.5 - k[:, 3]) * d0 / k[:, 1], d0], -1)
    return scale, offset


def camera_frame_theta(cameras: Cameras, voxel_extent: float, depth_extent: float | None = None) -> tuple[Tensor, Tensor]:
    """The [B,3,4] affine map from camera-grid coordinates to voxel-grid coordinates, plus d0 [B].

    Camera-grid coordinates (a, b, c) in [-1,1]^3 (``affine_grid``'s x, y, z = columns, rows, depth)
    are placed in the OpenCV camera frame at
        x = a * w_x + o_x,   y = b * w_y + o_y,   z = d0 + c * h
    where d0 is the distance from the camera to the point of its optical axis nearest the world
    origin (the look-at target for orbit cameras), ``w_x = d0 * 0.5 / f_x`` is the half-width the
    image covers at that depth (so the grid's columns line up with the image's columns there),
    ``o_x = (0.5 - c_x) d0 / f_x`` accounts for an off-centre principal point, and
    ``h = depth_extent`` (default sqrt(3) * voxel_extent, the voxel box's bounding sphere).
    The camera point goes to the world by cam2world and to grid_sample's normalised voxel
    coordinates ((z, y, x) / voxel_extent, the reverse of the voxel tensor's axis order X, Y, Z).

    The map is a rotation times a per-axis scale plus a translation; with ``perspective`` the
    grid is bent afterwards (see ``camera_frame_volume``).
    """
    c2w = cameras.cam2world.float()
    rot, eye = c2w[:, :3, :3], c2w[:, :3, 3]
    scale, offset = camera_frame_scale_offset(cameras, voxel_extent, depth_extent)
    d0 = offset[:, 2]
    # world = R (S [a,b,c] + o) + eye; voxel-normalised = P world / extent with P: (x,y,z) -> (z,y,x)
    perm = torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]], device=c2w.device)
    linear = perm @ rot * scale[:, None, :] / voxel_extent
    translation = perm @ (rot @ offset[..., None] + eye[..., None]) / voxel_extent
    return torch.cat([linear, translation], -1), d0


def affine_grid_3d(theta: Tensor, size: int) -> Tensor:
    """``F.affine_grid(theta, [B,1,G,G,G], align_corners=True)`` computed as a sum of three broadcast
    per-axis terms: equal to it (to float rounding) and several times faster on CPU, where
    affine_grid's batched matrix product over every sample dominates a training step."""
    lin = torch.linspace(-1.0, 1.0, size, device=theta.device, dtype=theta.dtype)
    linear, t = theta[:, :, :3], theta[:, :, 3]
    cols = linear[:, None, None, None, :, 0] * lin[None, None, None, :, None]
    rows = linear[:, None, None, None, :, 1] * lin[None, None, :, None, None]
    depth = linear[:, None, None, None, :, 2] * lin[None, :, None, None, None] + t[:, None, None, None, :]
    return (cols + rows) + depth


def camera_frame_grid(cameras: Cameras, voxel_extent: float, grid_resolution: int,
                      depth_extent: float | None = None, perspective: bool = False) -> Tensor:
    """grid_sample coordinates [B,G,G,G,3] of the camera-frame grid in the voxel grid (see
    ``camera_frame_volume``); depends only on the cameras, so one grid serves several voxel batches."""
    g = grid_resolution
    theta, _ = camera_frame_theta(cameras, voxel_extent, depth_extent)
    if not perspective:
        return affine_grid_3d(theta, g)
    # Camera-grid (a, b, c) -> camera point ((a w_x + o_x) z / d0, (b w_y + o_y) z / d0, z): the
    # affine map's camera-frame part scaled by z / d0 per slice, so each column is a pixel's ray.
    b = len(cameras)
    base = affine_grid_3d(torch.eye(3, 4, device=theta.device).expand(b, 3, 4), g)
    scale, offset = camera_frame_scale_offset(cameras, voxel_extent, depth_extent)
    bcast = (slice(None), None, None, None)
    depth = offset[:, 2][bcast] + base[..., 2] * scale[:, 2][bcast]
    bend = (depth / offset[:, 2][bcast]).clamp_min(0.0)
    cam = torch.stack([(base[..., 0] * scale[:, 0][bcast] + offset[:, 0][bcast]) * bend,
                       (base[..., 1] * scale[:, 1][bcast] + offset[:, 1][bcast]) * bend, depth], -1)
    c2w = cameras.cam2world.float()
    world = cam @ c2w[:, None, None, :3, :3].transpose(-1, -2) + c2w[:, None, None, None, :3, 3]
    return world.flip(-1) / voxel_extent  # (x, y, z) -> grid_sample's (z, y, x)


def sample_camera_frame(voxels: Tensor, grid: Tensor) -> Tensor:
    """Trilinear resampling of voxels [B,C,R,R,R] at ``grid`` [B,G,G,G,3] -> [B,C,G,G,G]; zero outside."""
    return F.grid_sample(voxels, grid.to(voxels.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


def camera_frame_volume(voxels: Tensor, cameras: Cameras, voxel_extent: float = 1.0, grid_resolution: int | None = None,
                        depth_extent: float | None = None, perspective: bool = False) -> Tensor:
    """Resample object-space voxels into the camera frame.

    voxels: [B,C,R,R,R] with axes (X, Y, Z) over [-voxel_extent, voxel_extent] (corner samples included).
    Returns [B,C,G,G,G] with axes (depth away from the camera, image rows downwards, image columns
    rightwards), G = grid_resolution (default 2R, as the paper embeds 64^3 into 128^3); zero outside
    the voxel box.

    perspective=False is the paper's rigid transform (orthographic columns; the network learns the
    perspective). perspective=True scales each depth slice by z / d0 so that every (row, column)
    line of the grid is a camera ray through that pixel (a frustum grid); an option, not the paper.
    """
    g = 2 * voxels.shape[-1] if grid_resolution is None else grid_resolution
    grid = camera_frame_grid(cameras.to(voxels.device), voxel_extent, g, depth_extent, perspective)
    return sample_camera_frame(voxels, grid)


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------
def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=False)


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(act(conv(act(x)))), 3x3(x3) convolutions."""

    def __init__(self, channels: int, dims: int) -> None:
        super().__init__()
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.body = nn.Sequential(_act(), conv(channels, channels, 3, 1, 1), _act(), conv(channels, channels, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class RenderNet(nn.Module):
    """Camera-frame volume [B,1,G,G,G] -> image [B,3,S,S] (trained towards images in [-1,1]; not clamped).

    grid_resolution: G (paper: 128); the 3D stage works at G/4 after two stride-2 convolutions.
    image_resolution: S (paper: 128); the 2D stage up- or down-samples from G/4 to S by factors of 2.
    channels_3d / channels_2d: widths of the 3D and 2D residual stages.
    """

    def __init__(self, grid_resolution: int = 128, image_resolution: int = 128, channels_3d: int = 32,
                 channels_2d: int = 256, res_blocks_3d: int = 2, res_blocks_2d: int = 4, min_channels_2d: int = 32) -> None:
        super().__init__()
        for name, value in (("grid_resolution", grid_resolution), ("image_resolution", image_resolution)):
            if value < 8 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two >= 8, got {value}")
        self.grid_resolution, self.image_resolution = grid_resolution, image_resolution
        low = grid_resolution // 4
        half = max(channels_3d // 2, 1)
        self.encoder3d = nn.Sequential(
            nn.Conv3d(1, half, 4, 2, 1), _act(),
            nn.Conv3d(half, channels_3d, 4, 2, 1),
            *[ResBlock(channels_3d, 3) for _ in range(res_blocks_3d)],
            _act(),
        )
        # Projection unit: fold depth into channels, then a learned 1x1 combination (RenderNet Sec. 3).
        self.projection = nn.Sequential(nn.Conv2d(channels_3d * low, channels_2d, 1), _act())
        self.blocks2d = nn.Sequential(*[ResBlock(channels_2d, 2) for _ in range(res_blocks_2d)])
        layers: list[nn.Module] = []
        res, width = low, channels_2d
        while res < image_resolution:
            out = max(width // 2, min_channels_2d)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, out, 3, 1, 1), _act()]
            res, width = res * 2, out
        while res > image_resolution:
            layers += [nn.Conv2d(width, width, 4, 2, 1), _act()]
            res //= 2
        layers.append(nn.Conv2d(width, 3, 3, 1, 1))
        self.decoder = nn.Sequential(_act(), *layers)

    def forward(self, volume: Tensor) -> Tensor:
        """volume: [B,1,G,G,G] (depth, rows, columns) -> [B,3,S,S] (linear output)."""
        if volume.shape[-3:] != (self.grid_resolution,) * 3:
            raise ValueError(f"RenderNet expects a {self.grid_resolution}^3 volume, got {tuple(volume.shape)}")
        feats = self.encoder3d(volume)  # [B,C,D,H,W]
        b, c, d, h, w = feats.shape
        feats = self.projection(feats.reshape(b, c * d, h, w))
        # Linear output: a tanh saturates at the white background early in training and then passes
        # no gradient to the object's pixels (the proxy collapses to an empty image).
        return self.decoder(self.blocks2d(feats))
