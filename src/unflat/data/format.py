"""unflat's one on-disk dataset format: writer, reader and validator.

A dataset is a directory::

    manifest.json     format name/version, counts, resolution, class names, per-file sha256
    images.npy        uint8 [N,H,W,3]        (memory-mapped on load)
    masks.npy         uint8 [N,H,W] 0..255   (optional)
    depth.npy         float16 [N,H,W]        (optional; camera-space z, 0 = background)
    labels.npy        int64 [N]              class id per image
    shape_ids.npy     int64 [N]              which object an image shows (views of one shape share it)
    cameras.json      {"convention": "opencv-cam2world", "frames": [{"cam2world": 4x4, "intrinsics": [fx/W, fy/H, cx/W, cy/H]}, ...]}
    meshes/           optional ground-truth meshes, ``{shape_id:06d}.ply`` in world units
    preview.png       a sample grid for people

See docs/data.md. Everything is validated on load with errors that name the file and field.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unflat import __version__
from unflat.cameras import Cameras
from unflat.errors import UserError
from unflat.hashing import file_sha256
from unflat.outputs import PARTIAL_MARKER, protected_reason, refuse_file, remove_partial

FORMAT_NAME = "unflat-dataset"
FORMAT_VERSION = 1
CAMERA_CONVENTION = "opencv-cam2world"
ARRAY_FILES = ("images.npy", "masks.npy", "depth.npy", "labels.npy", "shape_ids.npy")


BACKGROUNDS = ("white", "wild")
"""manifest.json "background": renders on plain white, or anything else (photos, textures, real scenes)."""


def background_of(manifest: dict) -> str:
    """The manifest's "background"; datasets written before it existed: photos ("images") are wild, renders white."""
    value = manifest.get("background")
    if value in BACKGROUNDS:
        return str(value)
    return "wild" if manifest.get("kind") == "images" else "white"


class DatasetError(UserError):
    """A dataset on disk is missing, broken or inconsistent."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a method needs to know about its training data."""

    resolution: int
    num_images: int
    num_shapes: int
    views_per_shape: int
    class_names: tuple[str, ...]
    has_masks: bool
    has_depth: bool
    has_meshes: bool
    kind: str = "synth"
    background: str = "white"
    """What is behind the objects: "white" (renders on plain white) or "wild" (photos, textures: methods learn it)."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# ---------------------------------------------------------------------------------------------
# cameras.json
# ---------------------------------------------------------------------------------------------
# Scenes fill the unit sphere; from farther than this a shape is far below a pixel at any field of view
# unflat renders (1 deg), and float32 ray arithmetic (1e30 gave an index of -2**63 in a voxel grid) breaks down.
MAX_CAMERA_DISTANCE = 1e4


def parse_cameras_json(payload: object, source: str = "cameras.json", expected: int | None = None) -> Cameras:
    """Validate a cameras JSON payload and return the cameras. Errors name the frame and field."""
    if not isinstance(payload, dict):
        raise DatasetError(f"{source}: top level must be an object with 'convention' and 'frames'")
    convention = payload.get("convention")
    if convention != CAMERA_CONVENTION:
        raise DatasetError(f"{source}: field 'convention' must be '{CAMERA_CONVENTION}', got {convention!r}")
    frames = payload.get("frames")
    if not isinstance(frames, list):
        raise DatasetError(f"{source}: field 'frames' must be a list")
    if expected is not None and len(frames) != expected:
        raise DatasetError(f"{source}: has {len(frames)} frames but the dataset has {expected} images")
    c2w = np.zeros((len(frames), 4, 4))
    intr = np.zeros((len(frames), 4))
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise DatasetError(f"{source}: frames[{i}] must be an object")
        for name, target, shape in (("cam2world", c2w, (4, 4)), ("intrinsics", intr, (4,))):
            try:
                value = np.asarray(frame[name], dtype=np.float64)
            except KeyError:
                raise DatasetError(f"{source}: frames[{i}] is missing field '{name}'") from None
            except (TypeError, ValueError):
                raise DatasetError(f"{source}: frames[{i}].{name} is not numeric") from None
            if value.shape != shape:
                raise DatasetError(f"{source}: frames[{i}].{name} must have shape {shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise DatasetError(f"{source}: frames[{i}].{name} contains NaN or Inf")
            target[i] = value
    distance = np.linalg.norm(c2w[:, :3, 3], axis=1)
    if len(frames) and distance.max() > MAX_CAMERA_DISTANCE:
        far = int(distance.argmax())
        raise DatasetError(
            f"{source}: frames[{far}] camera is {distance[far]:.3g} units from the origin (at most {MAX_CAMERA_DISTANCE:g}: "
            "unflat scenes fill the unit sphere, so the shape would be far below one pixel); fix its cam2world translation"
        )
    cameras = Cameras(torch.from_numpy(c2w).float(), torch.from_numpy(intr).float())
    valid = cameras.is_valid(atol=1e-3)
    if not bool(valid.all()):
        bad = int((~valid).nonzero()[0, 0])
        raise DatasetError(
            f"{source}: frames[{bad}] is not a valid camera (cam2world rotation must be orthonormal with "
            "det +1, last row (0,0,0,1), intrinsics fx, fy > 0)"
        )
    return cameras


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------
# what dataset writers put in a dataset folder, and the domain backbone `unflat train backbone` installs there
DATASET_FILES = frozenset({*ARRAY_FILES, "manifest.json", "cameras.json", "preview.png", "meshes",
                           "backbone.safetensors", "backbone.json"})


def is_unflat_dataset(directory: Path) -> bool:
    """True when ``directory`` has a manifest.json that says it is an unflat dataset (any version)."""
    try:
        manifest = json.loads((Path(directory) / "manifest.json").read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME


def foreign_entries(directory: Path) -> list[str]:
    """Entries of a dataset folder that no unflat dataset writer makes (a user's files put there later)."""
    directory = Path(directory)
    foreign = [p.name for p in directory.iterdir() if p.name not in DATASET_FILES or p.is_symlink()]
    meshes = directory / "meshes"
    if meshes.is_dir() and not meshes.is_symlink():
        foreign += [f"meshes/{p.name}" for p in meshes.iterdir()
                    if not (p.suffix == ".ply" and p.stem.isdigit() and p.is_file() and not p.is_symlink())]
    elif meshes.exists():
        foreign.append("meshes")
    return sorted(foreign)


def check_dataset_destination(out: Path, overwrite: bool) -> None:
    """Refuse (one line) a dataset --out that would replace something unflat did not write.

    Allowed: a new path, an empty folder, or (with ``overwrite``) an unflat dataset holding only what a dataset
    writer makes. Never the current folder, the home folder, the root or a folder above one of them."""
    out = Path(out)
    refuse_file(out)
    reason = protected_reason(out)
    if reason is not None:
        raise UserError(f"{out}: unflat will not write a dataset in place of this folder ({reason}); "
                        f"choose a new --out, e.g. {out / 'dataset'}")
    if not out.is_dir():
        return
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise UserError(f"{out}: cannot read this folder ({exc.strerror or exc}); choose another --out") from None
    if empty:
        return
    if not is_unflat_dataset(out):
        raise UserError(f"{out}: folder is not empty and is not an unflat dataset (no manifest.json saying so), so it "
                        "may hold your files; --overwrite replaces only unflat datasets: choose a new --out or delete "
                        "the folder yourself")
    if not overwrite:
        raise UserError(f"{out} already holds an unflat dataset; pass --overwrite to replace it or choose another --out")
    foreign = foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(f"{out}: --overwrite refused: this unflat dataset also holds {shown}, which unflat did not "
                        "write; move that out or delete the folder yourself, or choose a new --out")


class DatasetWriter:
    """Streams samples to disk in chunks, then assembles the final arrays and manifest.

    Use as a context manager; ``finalize()`` is called on a clean exit. Nothing appears at ``out``
    until the dataset is complete (it is assembled in ``out.partial`` and renamed).
    """

    def __init__(
        self,
        out: Path,
        resolution: int,
        class_names: list[str] | tuple[str, ...],
        kind: str,
        with_masks: bool = True,
        with_depth: bool = False,
        views_per_shape: int = 1,
        chunk_size: int = 1024,
        overwrite: bool = False,
        source: dict | None = None,
        background: str = "white",
    ) -> None:
        if background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
        self.background = background
        self.out = Path(out)
        self.overwrite = overwrite
        check_dataset_destination(self.out, overwrite)
        self.tmp = self.out.with_name(self.out.name + ".partial")
        remove_partial(self.tmp)  # only one an earlier unflat writer left (it carries PARTIAL_MARKER)
        try:
            (self.tmp / "chunks").mkdir(parents=True)
        except OSError as exc:
            raise UserError(f"{self.out}: cannot write a dataset here ({exc.strerror or exc}); choose another --out") from None
        (self.tmp / PARTIAL_MARKER).write_text("a dataset being written by unflat; removed when it is complete\n")
        self.resolution = resolution
        self.class_names = tuple(class_names)
        self.kind = kind
        self.with_masks, self.with_depth = with_masks, with_depth
        self.views_per_shape = views_per_shape
        self.chunk_size = chunk_size
        self.source = source or {}
        self._buffers: dict[str, list[np.ndarray]] = {name: [] for name in ARRAY_FILES}
        self._frames: list[dict] = []
        self._chunks = 0
        self.count = 0
        self.meshes_dir = self.tmp / "meshes"

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OSError) and (exc.errno in _DISK_FULL or exc.errno is None):
                raise self._write_error(exc) from exc

    def _write_error(self, exc: OSError) -> UserError:
        """A failed write (disk full, file too large, quota): nothing half-written is left, nothing at out changed."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        reason = exc.strerror or str(exc)
        hint = "; is the disk full?" if exc.errno in _DISK_FULL or exc.errno is None else ""  # None: numpy's short write
        return UserError(f"{self.out}: could not write the dataset ({reason}{hint}); its partial copy {self.tmp} was "
                         f"removed and {self.out} is as it was: free disk space (or fix permissions) and run again")

    def add(
        self,
        image: np.ndarray,
        camera: Cameras,
        class_id: int = 0,
        shape_id: int | None = None,
        mask: np.ndarray | None = None,
        depth: np.ndarray | None = None,
    ) -> None:
        """image: uint8 [H,W,3]; mask: uint8 [H,W] or float [H,W] in [0,1]; depth: float [H,W]; camera: 1 camera."""
        r = self.resolution
        if image.shape != (r, r, 3) or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 [{r},{r},3], got {image.dtype} {image.shape}")
        if not 0 <= class_id < len(self.class_names):
            raise ValueError(f"class_id {class_id} out of range for {len(self.class_names)} classes")
        self._buffers["images.npy"].append(image)
        if self.with_masks:
            if mask is None:
                raise ValueError("this dataset stores masks; pass mask=")
            if mask.dtype != np.uint8:
                mask = np.clip(np.rint(mask * 255), 0, 255).astype(np.uint8)
            self._buffers["masks.npy"].append(mask.reshape(r, r))
        if self.with_depth:
            if depth is None:
                raise ValueError("this dataset stores depth; pass depth=")
            self._buffers["depth.npy"].append(depth.reshape(r, r).astype(np.float16))
        self._buffers["labels.npy"].append(np.int64(class_id))
        self._buffers["shape_ids.npy"].append(np.int64(self.count if shape_id is None else shape_id))
        self._frames.extend(camera.to_json())
        self.count += 1
        if len(self._buffers["images.npy"]) >= self.chunk_size:
            self._flush()

    def add_mesh(self, shape_id: int, mesh: "object") -> None:
        """Store a ground-truth mesh (trimesh.Trimesh) for ``shape_id``."""
        try:
            self.meshes_dir.mkdir(exist_ok=True)
            mesh.export(self.meshes_dir / f"{shape_id:06d}.ply")
        except OSError as exc:
            raise self._write_error(exc) from exc

    def _flush(self) -> None:
        try:
            self._write_chunks()
        except OSError as exc:
            raise self._write_error(exc) from exc

    def _write_chunks(self) -> None:
        if not self._buffers["images.npy"]:
            return
        for name, items in self._buffers.items():
            if items:
                np.save(self.tmp / "chunks" / f"{self._chunks:05d}-{name}", np.stack(items))
                items.clear()
        self._chunks += 1

    def finalize(self) -> Path:
        self._flush()
        if self.count == 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise UserError(f"no usable samples were written to {self.out}")
        try:
            return self._assemble()
        except OSError as exc:
            raise self._write_error(exc) from exc
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _assemble(self) -> Path:
        names = ["images.npy", "labels.npy", "shape_ids.npy"]
        names += ["masks.npy"] * self.with_masks + ["depth.npy"] * self.with_depth
        files = {}
        for name in names:
            parts = [self.tmp / "chunks" / f"{c:05d}-{name}" for c in range(self._chunks)]
            first = np.load(parts[0], mmap_mode="r")
            target = np.lib.format.open_memmap(
                self.tmp / name, mode="w+", dtype=first.dtype, shape=(self.count, *first.shape[1:])
            )
            _allocate(self.tmp / name)  # a full disk is an error now, not a SIGBUS when the memory map is written
            offset = 0
            for part in parts:
                block = np.load(part, mmap_mode="r")
                target[offset : offset + len(block)] = block
                offset += len(block)
            target.flush()
            del target
            files[name] = {"sha256": file_sha256(self.tmp / name), "bytes": (self.tmp / name).stat().st_size}
        shutil.rmtree(self.tmp / "chunks")
        (self.tmp / "cameras.json").write_text(json.dumps({"convention": CAMERA_CONVENTION, "frames": self._frames}))
        files["cameras.json"] = {"sha256": file_sha256(self.tmp / "cameras.json"), "bytes": (self.tmp / "cameras.json").stat().st_size}
        shape_ids = np.load(self.tmp / "shape_ids.npy", mmap_mode="r")
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "unflat_version": __version__,
            "kind": self.kind,
            "background": self.background,
            "num_images": self.count,
            "num_shapes": int(len(np.unique(shape_ids))),
            "views_per_shape": self.views_per_shape,
            "resolution": self.resolution,
            "class_names": list(self.class_names),
            "has_masks": self.with_masks,
            "has_depth": self.with_depth,
            "has_meshes": self.meshes_dir.exists(),
            "files": files,
            "source": self.source,
        }
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        _write_preview(self.tmp)
        (self.tmp / PARTIAL_MARKER).unlink()
        check_dataset_destination(self.out, self.overwrite)  # again: the folder may have changed while we wrote
        old = None
        if self.out.exists():  # an unflat dataset or an empty folder (checked): move it aside, then delete it
            old = self.out.with_name(f"{self.out.name}.replaced-{os.getpid()}")
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _allocate(path: Path) -> None:
    """Reserve a (sparse) file's blocks, so writing it through a memory map cannot run out of space."""
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover - macOS, Windows
        return
    with open(path, "r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
                return  # a file system without it: as before
            raise


def _write_preview(directory: Path, count: int = 16) -> None:
    from PIL import Image

    images = np.load(directory / "images.npy", mmap_mode="r")
    pick = np.linspace(0, len(images) - 1, min(count, len(images))).astype(int)
    cols = int(math.ceil(math.sqrt(len(pick))))
    rows = int(math.ceil(len(pick) / cols))
    h, w = images.shape[1:3]
    grid = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for n, i in enumerate(pick):
        grid[(n // cols) * h : (n // cols + 1) * h, (n % cols) * w : (n % cols + 1) * w] = images[i]
    Image.fromarray(grid).save(directory / "preview.png")


# ---------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """A loaded dataset: memory-mapped arrays plus cameras. Index with ``slice_numpy``/``loader``."""

    root: Path
    info: DatasetInfo
    images: np.ndarray  # uint8 [N,H,W,3]
    labels: np.ndarray  # int64 [N]
    shape_ids: np.ndarray  # int64 [N]
    cameras: Cameras
    masks: np.ndarray | None = None  # uint8 [N,H,W]
    depth: np.ndarray | None = None  # float16 [N,H,W]
    manifest: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.info.num_images

    def views_of_shape(self) -> list[np.ndarray]:
        """Image indices grouped by shape id, in shape-id order."""
        order = np.argsort(self.shape_ids, kind="stable")
        ids = self.shape_ids[order]
        splits = np.flatnonzero(np.diff(ids)) + 1
        return np.split(order, splits)

    def mesh_path(self, shape_id: int) -> Path | None:
        path = self.root / "meshes" / f"{shape_id:06d}.ply"
        return path if path.exists() else None


def _load_array(root: Path, name: str, dtype: np.dtype, shape_tail: tuple, count: int) -> np.ndarray:
    path = root / name
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (the manifest says this dataset has it)") from None
    except EOFError:  # a zero-byte or cut-off header
        raise DatasetError(f"{path}: empty or truncated .npy file; re-create the dataset") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:  # a 'PK' header makes numpy try .npz
        raise DatasetError(f"{path}: not a readable .npy array ({exc}); re-create the dataset") from None
    if not isinstance(array, np.ndarray):  # an .npz archive, not an array
        raise DatasetError(f"{path}: an .npz archive, not a .npy array; re-create the dataset")
    if array.dtype != dtype:
        raise DatasetError(f"{path}: dtype must be {np.dtype(dtype)}, got {array.dtype}")
    if array.ndim != 1 + len(shape_tail) or array.shape[0] != count or tuple(array.shape[1:]) != shape_tail:
        raise DatasetError(f"{path}: shape must be {(count, *shape_tail)}, got {array.shape}")
    return array


def _check_depth_values(path: Path, depth: np.ndarray, chunk: int = 256) -> None:
    """Depth is camera-space z, 0 for background: NaN, Inf or negative values are a broken file (NaN was
    silently taken for background). Scanned in chunks so a large memory-mapped file is not read at once."""
    for start in range(0, len(depth), chunk):
        raw = depth[start:start + chunk]
        if raw.view(np.uint16).max() < 0x7C00:  # float16 bits: no sign bit and no all-ones exponent (Inf/NaN)
            continue  # the fast path, one integer max per chunk; the exact check below only when something is off
        block = np.asarray(raw, dtype=np.float32)
        bad = ~np.isfinite(block) | (block < 0)  # -0.0 passes
        if bad.any():
            i, y, x = (int(v[0]) for v in np.nonzero(bad))
            raise DatasetError(f"{path}: depth must be finite and >= 0 (0 = background), got {block[i, y, x]} "
                               f"in image {start + i} at pixel ({y}, {x}); re-create the dataset")


def read_manifest(root: Path) -> dict:
    path = Path(root) / "manifest.json"
    if not Path(root).is_dir():
        raise DatasetError(f"{root}: not a directory; make a dataset with `unflat dataset synth|render|images`")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; {root} is not an unflat dataset (make one with `unflat dataset ...`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc})") from None
    except RecursionError:  # json recurses once per nesting level
        raise DatasetError(f"{path}: invalid JSON (nested too deeply); re-create the dataset") from None
    except OSError as exc:
        raise DatasetError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path}: field 'format' must be '{FORMAT_NAME}'")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: format_version {version!r} is not supported by unflat {__version__} (expects {FORMAT_VERSION}); "
            "re-create the dataset with this version"
        )
    required = {"num_images": int, "resolution": int, "class_names": list, "has_masks": bool, "has_depth": bool}
    for key, kind in required.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool) != (kind is bool):
            raise DatasetError(f"{path}: field '{key}' must be a {kind.__name__}")
    if manifest["num_images"] <= 0 or manifest["resolution"] <= 0:
        raise DatasetError(f"{path}: 'num_images' and 'resolution' must be positive")
    for key in ("num_shapes", "views_per_shape"):  # optional, but used when present
        value = manifest.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise DatasetError(f"{path}: field '{key}' must be a positive int, got {value!r}")
    if not all(isinstance(name, str) for name in manifest["class_names"]) or not manifest["class_names"]:
        raise DatasetError(f"{path}: field 'class_names' must be a non-empty list of strings")
    return manifest


def open_dataset(root: Path | str, verify_hashes: bool = False) -> Dataset:
    """Open and validate a dataset directory. ``verify_hashes`` also checks every file's sha256."""
    root = Path(root)
    manifest = read_manifest(root)
    n, r = manifest["num_images"], manifest["resolution"]
    if verify_hashes:
        for name, entry in manifest.get("files", {}).items():
            if file_sha256(root / name) != entry.get("sha256"):
                raise DatasetError(f"{root / name}: content hash does not match manifest.json (file changed or corrupt)")
    images = _load_array(root, "images.npy", np.uint8, (r, r, 3), n)
    labels = _load_array(root, "labels.npy", np.int64, (), n)
    shape_ids = _load_array(root, "shape_ids.npy", np.int64, (), n)
    masks = _load_array(root, "masks.npy", np.uint8, (r, r), n) if manifest["has_masks"] else None
    depth = _load_array(root, "depth.npy", np.float16, (r, r), n) if manifest["has_depth"] else None
    if depth is not None:
        _check_depth_values(root / "depth.npy", depth)
    num_classes = len(manifest["class_names"])
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{root / 'labels.npy'}: class ids must lie in [0, {num_classes}) (manifest class_names)")
    try:
        payload = json.loads((root / "cameras.json").read_text())
    except FileNotFoundError:
        raise DatasetError(f"{root / 'cameras.json'}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{root / 'cameras.json'}: invalid JSON ({exc})") from None
    except RecursionError:
        raise DatasetError(f"{root / 'cameras.json'}: invalid JSON (nested too deeply); re-create the dataset") from None
    except OSError as exc:
        raise DatasetError(f"{root / 'cameras.json'}: unreadable ({exc.strerror or exc})") from None
    cameras = parse_cameras_json(payload, str(root / "cameras.json"), expected=n)
    info = DatasetInfo(
        resolution=r,
        num_images=n,
        num_shapes=int(manifest.get("num_shapes", n)),
        views_per_shape=int(manifest.get("views_per_shape", 1)),
        class_names=tuple(manifest["class_names"]),
        has_masks=manifest["has_masks"],
        has_depth=manifest["has_depth"],
        has_meshes=bool(manifest.get("has_meshes", False)),
        kind=str(manifest.get("kind", "unknown")),
        background=background_of(manifest),
    )
    return Dataset(root, info, images, labels, shape_ids, cameras, masks, depth, manifest)
