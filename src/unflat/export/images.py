"""Image grids, turntable animations and interpolation videos.

Videos: ``.gif`` is always available (Pillow); ``.mp4`` needs the ``imageio-ffmpeg`` package (its
wheel ships an ffmpeg binary). Without it an MP4 request writes a GIF next to it and warns.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable, Sequence

import imageio.v3 as iio
import numpy as np
import torch
import trimesh
from torch import Tensor

from unflat.cameras import Cameras
from unflat.render.base import MeshRenderer



def to_uint8(images: Tensor | np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Images [B,C,H,W] (C = 1, 3 or 4; float) -> uint8 [B,H,W,3].

    value_range: the float range that maps to 0..255; None guesses (-1, 1) when any value is
    negative, else (0, 1). Pass it explicitly when the guess could be wrong (e.g. dark [-1,1]
    images that happen to be non-negative). One channel is repeated to grey, alpha is dropped.
    """
    array = images.detach().float().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images, np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[1] not in (1, 3, 4):
        raise ValueError(f"images must be [B,C,H,W] with C in 1,3,4, got {array.shape}")
    if value_range is None:
        value_range = (-1.0, 1.0) if array.min() < 0 else (0.0, 1.0)
    lo, hi = value_range
    array = (array - lo) / (hi - lo)
    array = array[:, :3] if array.shape[1] != 1 else np.repeat(array, 3, axis=1)
    return np.rint(np.clip(array, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def make_grid(images: np.ndarray, nrow: int = 8, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """uint8 images [B,H,W,3] -> one uint8 image [rows*(H+p)+p, nrow*(W+p)+p, 3], row-major."""
    count, height, width, channels = images.shape
    ncol = max(1, min(nrow, count))
    nrows = math.ceil(count / ncol)
    grid = np.full(
        (nrows * (height + padding) + padding, ncol * (width + padding) + padding, channels), pad_value, np.uint8
    )
    for index, image in enumerate(images):
        r, c = divmod(index, ncol)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def with_caption(image: np.ndarray, text: str, pad_value: int = 255) -> np.ndarray:
    """uint8 image [H,W,3] -> [H+h,W,3] with one line of dark ``text`` on a strip above it (PIL's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    left, top, right, bottom = font.getbbox(text)
    strip = Image.new("RGB", (image.shape[1], bottom + 6), (pad_value,) * 3)
    ImageDraw.Draw(strip).text((3, 3 - top), text, fill=(40, 40, 40), font=font)
    return np.concatenate([np.asarray(strip, np.uint8), image], axis=0)


def save_grid(
    images: Tensor | np.ndarray,
    path: str | Path,
    nrow: int = 8,
    padding: int = 2,
    value_range: tuple[float, float] | None = None,
) -> Path:
    """Save images [B,C,H,W] (in [0,1] or [-1,1], see ``to_uint8``) as one grid image (PNG/JPEG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, make_grid(to_uint8(images, value_range), nrow, padding))
    return path


def turntable_cameras(
    frames: int = 36, elevation: float = 20.0, radius: float = 2.5, fov: float = 30.0
) -> Cameras:
    """``frames`` cameras evenly spaced in azimuth (starting at 0, i.e. on +Z) around the origin."""
    azimuth = torch.arange(frames, dtype=torch.float32) * (360.0 / frames)
    return Cameras.from_orbit(azimuth, torch.full_like(azimuth, elevation), radius, fov)


def save_turntable(
    render_fn: Callable[[Cameras], Tensor],
    path: str | Path,
    frames: int = 36,
    elevation: float = 20.0,
    radius: float = 2.5,
    fov: float = 30.0,
    fps: int = 12,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> Path:
    """Render a full orbit with ``render_fn`` (Cameras -> rgb [B,3,H,W] in [0,1]) and save it as a
    looping ``.gif`` or ``.mp4``. Returns the path written (may be the GIF fallback)."""
    cameras = turntable_cameras(frames, elevation, radius, fov).to(device)
    chunks = []
    with torch.no_grad():
        for start in range(0, frames, batch_size):
            chunks.append(to_uint8(render_fn(cameras[start : start + batch_size]), (0.0, 1.0)))
    return write_video(np.concatenate(chunks), path, fps)


def save_mesh_turntable(
    mesh: trimesh.Trimesh,
    path: str | Path,
    renderer: MeshRenderer,
    frames: int = 36,
    elevation: float = 20.0,
    radius: float | None = None,
    fov: float = 30.0,
    fps: int = 12,
) -> Path:
    """Turntable of a mesh with any renderer that has ``.render(mesh, cameras) -> RenderOutput``.

    radius: camera distance from the origin; None fits the mesh's farthest vertex in view.
    """
    if radius is None:
        radius = fit_radius(float(np.linalg.norm(mesh.vertices, axis=1).max()), fov)
    return save_turntable(
        lambda cameras: renderer.render(mesh, cameras).rgb, path, frames, elevation, radius, fov, fps
    )


def fit_radius(object_radius: float, fov: float, margin: float = 1.1) -> float:
    """Camera distance at which a sphere of ``object_radius`` about the origin fills the view."""
    return margin * object_radius / math.sin(math.radians(fov) / 2)


def save_interpolation_video(
    frames: Sequence[Tensor | np.ndarray] | Tensor | np.ndarray,
    path: str | Path,
    fps: int = 12,
    boomerang: bool = False,
    value_range: tuple[float, float] | None = None,
) -> Path:
    """Frames (each [3,H,W] or [B,3,H,W], shown as a grid row when B > 1) -> ``.gif``/``.mp4``.

    boomerang: append the frames in reverse so the loop plays back and forth without a jump.
    """
    if isinstance(frames, (Tensor, np.ndarray)):
        frames = list(frames)
    images = []
    for frame in frames:
        batch = to_uint8(frame, value_range)
        images.append(batch[0] if len(batch) == 1 else make_grid(batch, nrow=len(batch)))
    if boomerang and len(images) > 2:
        images = images + images[-2:0:-1]
    return write_video(np.stack(images), path, fps)


def write_video(frames: np.ndarray, path: str | Path, fps: int = 12) -> Path:
    """uint8 frames [T,H,W,3] -> looping GIF, or MP4 (H.264) when imageio-ffmpeg is installed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".mp4" and not _has_ffmpeg():
        fallback = path.with_suffix(".gif")
        warnings.warn(f"imageio-ffmpeg is not installed (pip install 'unflat[video]'); writing {fallback} instead of {path}",
                      stacklevel=2)
        path, suffix = fallback, ".gif"
    if suffix == ".gif":
        iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    elif suffix == ".mp4":
        import imageio.v2 as iio2

        # H.264 in yuv420p needs even sides: pad by one row/column of edge pixels where needed.
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        iio2.mimwrite(path, list(frames), fps=fps, codec="libx264", macro_block_size=1, quality=8)
    else:
        raise ValueError(f"unknown video format {path.suffix!r}; use .gif or .mp4")
    return path


def _has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return False
    return True


def depth_to_image(depth: Tensor, mask: Tensor | None) -> Tensor:
    """Depth [B,1,H,W] -> [B,1,H,W] in [0,1] (near = bright), normalised per image over covered pixels."""
    m = (mask > 0.5) if mask is not None else torch.ones_like(depth, dtype=torch.bool)
    out = torch.zeros_like(depth)
    for i in range(depth.shape[0]):
        d = depth[i][m[i]]
        if d.numel() > 1:
            lo, hi = d.min(), d.max()
            out[i] = torch.where(m[i], 1 - (depth[i] - lo) / (hi - lo + 1e-8), torch.zeros_like(depth[i]))
    return out
