"""Write an unflat dataset as an EG3D training set: a zip of PNGs plus dataset.json with one 25-float label per
image (EG3D's camera conditioning), for the same-call comparison with the official EG3D (eg3d_compare.sh).

EG3D's label = flattened 4x4 cam2world (OpenCV axes: x right, y down, z forward; its world is +Y up, see its
camera_utils.create_cam2world_matrix) + flattened 3x3 intrinsics normalised by the image size
[[fx/W, 0, cx/W], [0, fy/H, cy/H], [0, 0, 1]], with pixel centres at (i + 0.5) / W (its RaySampler).
That is unflat's convention (docs/cameras.md), so the rotation and intrinsics carry over unchanged. Only the
world's scale differs: EG3D's --cfg=shapenet renders rays from depth 0.1 to 2.6 inside the cube
[-0.8, 0.8]^3 (box_warp 1.6) with cameras about 1.7 from the origin, while unflat's synth shapes fill the unit
sphere seen from radius 3. So camera centres are scaled by ``camera_radius / median radius`` (default 1.7),
which puts the whole object inside EG3D's box and ray range.

  python benchmarks/eg3d_dataset.py --src data/chairs128 --out runs/eg3d_compare/chairs128.zip
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from unflat.cameras import Cameras
from unflat.data.format import open_dataset

EG3D_SHAPENET_CAMERA_RADIUS = 1.7  # EG3D train.py --cfg=shapenet: avg_camera_radius


def eg3d_labels(cameras: Cameras, world_scale: float = 1.0) -> np.ndarray:
    """unflat cameras -> EG3D labels [N,25] float32 (cam2world with its centre scaled by ``world_scale``)."""
    c2w = cameras.cam2world.double().clone()
    c2w[:, :3, 3] *= world_scale
    fx, fy, cx, cy = cameras.intrinsics.double().unbind(-1)
    k = torch.zeros(len(cameras), 3, 3, dtype=torch.float64)
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = fx, fy, cx, cy, 1.0
    return torch.cat([c2w.reshape(-1, 16), k.reshape(-1, 9)], 1).float().numpy()


def cameras_from_eg3d_labels(labels: np.ndarray, world_scale: float = 1.0) -> Cameras:
    """Inverse of ``eg3d_labels``: labels [N,25] -> unflat cameras in the original world units."""
    labels = torch.as_tensor(np.asarray(labels, dtype=np.float64))
    c2w = labels[:, :16].reshape(-1, 4, 4).clone()
    c2w[:, :3, 3] /= world_scale
    k = labels[:, 16:].reshape(-1, 3, 3)
    return Cameras(c2w.float(), torch.stack([k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]], -1).float())


def write_eg3d_zip(src: Path, out: Path, camera_radius: float = EG3D_SHAPENET_CAMERA_RADIUS,
                   limit: int | None = None) -> dict:
    """Convert the unflat dataset at ``src`` to EG3D's zip format at ``out``; returns a summary dict.

    Image i becomes ``{i // 1000:05d}/img{i:08d}.png`` (the layout of EG3D's dataset_tool.py).
    """
    data = open_dataset(src)
    n = len(data) if limit is None else min(limit, len(data))
    _, _, radius = data.cameras.to_orbit()
    world_scale = float(camera_radius / radius[:n].median())
    labels = eg3d_labels(data.cameras[:n], world_scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    entries = []
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for i in range(n):
            name = f"{i // 1000:05d}/img{i:08d}.png"
            buffer = io.BytesIO()
            PIL.Image.fromarray(np.asarray(data.images[i])).save(buffer, format="png", compress_level=1)
            archive.writestr(name, buffer.getvalue())
            entries.append([name, labels[i].tolist()])
        meta = {"source": str(src), "world_scale": world_scale, "camera_radius": camera_radius,
                "label": "flattened OpenCV cam2world 4x4 + normalised intrinsics 3x3"}
        archive.writestr("dataset.json", json.dumps({"labels": entries, "unflat": meta}))
    tmp.replace(out)
    return {"images": n, "resolution": data.info.resolution, "world_scale": world_scale, "out": str(out)}


def write_orbit_noise_zip(out: Path, n: int, resolution: int = 128, seed: int = 0) -> dict:
    """Fallback when no rendered dataset can be made: uniform-noise images with unflat orbit cameras (radius 1.7,
    already in EG3D's units). EG3D's training speed does not depend on image content; the labels are still real
    cameras so its pose-conditioned D sees valid input."""
    g = torch.Generator().manual_seed(seed)
    cameras = Cameras.sample_orbit(n, g, radius=EG3D_SHAPENET_CAMERA_RADIUS, fov_deg=40.0)
    labels = eg3d_labels(cameras)
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        entries = []
        for i in range(n):
            name = f"{i // 1000:05d}/img{i:08d}.png"
            buffer = io.BytesIO()
            PIL.Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(
                buffer, format="png", compress_level=1)
            archive.writestr(name, buffer.getvalue())
            entries.append([name, labels[i].tolist()])
        archive.writestr("dataset.json", json.dumps({"labels": entries, "unflat": {"source": "orbit-noise fallback"}}))
    tmp.replace(out)
    return {"images": n, "resolution": resolution, "world_scale": 1.0, "out": str(out), "fallback": "orbit-noise"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=None, help="unflat dataset directory")
    parser.add_argument("--out", type=Path, required=True, help="EG3D dataset zip to write")
    parser.add_argument("--camera-radius", type=float, default=EG3D_SHAPENET_CAMERA_RADIUS,
                        help="median camera distance after scaling the world (EG3D --cfg=shapenet: 1.7)")
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N images")
    parser.add_argument("--orbit-noise", type=int, default=None, metavar="N",
                        help="instead of --src: N noise images with orbit cameras (fallback, speed tests only)")
    parser.add_argument("--resolution", type=int, default=128, help="with --orbit-noise")
    args = parser.parse_args()
    if args.orbit_noise:
        summary = write_orbit_noise_zip(args.out, args.orbit_noise, args.resolution)
    elif args.src is not None:
        summary = write_eg3d_zip(args.src, args.out, args.camera_radius, args.limit)
    else:
        parser.error("give --src DATASET or --orbit-noise N")
    print(json.dumps(summary), file=sys.stdout)


if __name__ == "__main__":
    main()
