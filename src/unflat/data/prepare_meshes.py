"""User meshes -> normalised trimesh objects: discovery, robust loading, normalisation, classes.

Used by ``unflat dataset render`` (IG-GAN's setting: a folder of ShapeNet-like meshes rendered by
an off-the-shelf renderer). Broken files never stop a run: they come back as ``SkipReason``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh

from unflat.data.image_files import SkipReason

MESH_SUFFIXES = {".obj", ".glb", ".gltf", ".ply", ".stl", ".off"}
UpAxis = Literal["y", "z"]
"""The file's up axis: "y" (OBJ/glTF/ShapeNet convention) or "z" (common for STL/CAD)."""

# Z-up -> Y-up: rotate -90 degrees about X, (x, y, z) -> (x, z, -y).
_Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def find_mesh_files(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """All mesh files under ``root`` (recursively) with their class name, and the sorted class names.

    Classes: when meshes sit in sub-folders, the first-level sub-folder is the class (meshes
    directly in ``root`` get the class ``root.name``); otherwise there is one class, ``root.name``.
    Hidden files/folders (starting with '.') are ignored.
    """
    root = Path(root)
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in MESH_SUFFIXES and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    items = []
    for path in files:
        rel = path.relative_to(root)
        items.append((path, rel.parts[0] if len(rel.parts) > 1 else root.name))
    classes = sorted({c for _, c in items})
    return items, classes


def load_mesh(path: Path, up_axis: UpAxis = "y") -> trimesh.Trimesh | SkipReason:
    """Load one file as a single normalised mesh (scenes are flattened with their transforms)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return SkipReason("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = trimesh.load(path, force="mesh", process=True)
    except Exception as exc:  # noqa: BLE001  (loaders raise anything on malformed files)
        return SkipReason("unreadable mesh", f"{type(exc).__name__}: {str(exc)[:100]}")
    if isinstance(loaded, list):
        loaded = [m for m in loaded if isinstance(m, trimesh.Trimesh)]
        loaded = trimesh.util.concatenate(loaded) if loaded else None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        return SkipReason("no triangles", "file holds no triangle mesh (point cloud, lines or empty)")
    if not np.isfinite(loaded.vertices).all():
        return SkipReason("invalid vertices", "NaN or infinite coordinates")
    if up_axis == "z":
        loaded.apply_transform(_Z_UP_TO_Y_UP)
    extent = np.ptp(loaded.vertices, axis=0)
    if extent.max() <= 0:
        return SkipReason("degenerate mesh", "all vertices coincide")
    with np.errstate(over="ignore"):  # the overflow is what is tested here
        radius = np.linalg.norm(loaded.vertices, axis=1)
    if not np.isfinite(extent).all() or not np.isfinite(radius).all():
        # coordinates near the float limit (1e308): normalising would scale every vertex to 0, a blank image
        return SkipReason("invalid vertices", "coordinates too large to normalise (near the float limit)")
    return normalize_to_unit_sphere(loaded)


def normalize_to_unit_sphere(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centre the bounding box at the origin and scale the farthest vertex to distance 1 (in place).

    The same normalisation as the procedural categories, so a shape fits [-1,1]^3 and any view
    at the default camera distance."""
    vertices = np.asarray(mesh.vertices)
    center = (vertices.min(0) + vertices.max(0)) / 2
    mesh.apply_translation(-center)
    mesh.apply_scale(1.0 / np.linalg.norm(mesh.vertices, axis=1).max())
    return mesh
