"""One line about exported meshes (how many, how big, at which iso-level), for `unflat export`: files alone do
not say whether the meshes are any good (an untrained generator writes few, tiny meshes). ``export.json`` beside
the meshes records the settings and each mesh's iso-level."""

from __future__ import annotations

import json
import math
from pathlib import Path

RECORD_NAME = "export.json"


def write_export_record(out_dir: Path, settings: dict, meshes: list[dict]) -> Path:
    """``out_dir/export.json``: {"settings": the export settings, "meshes": one dict per mesh written (its file
    stem, faces, iso_level and, for a level chosen from the renders, its silhouette_iou)}; NaN becomes null."""
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    record = {"settings": {k: clean(v) for k, v in settings.items()},
              "meshes": [{k: clean(v) for k, v in m.items()} for m in meshes]}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RECORD_NAME
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def level_summary(out_dir: Path) -> str:
    """ "iso-level auto: 3.1-25 (median 12), silhouette IoU 0.81-0.97" from ``out_dir/export.json`` ("" without one)."""
    import numpy as np

    path = Path(out_dir) / RECORD_NAME
    if not path.is_file():
        return ""
    record = json.loads(path.read_text())
    levels = [m["iso_level"] for m in record.get("meshes", []) if m.get("iso_level") is not None]
    if not levels:
        return ""
    mode = record.get("settings", {}).get("level")
    text = f"iso-level {mode if mode == 'auto' else 'fixed'}: {min(levels):.3g}-{max(levels):.3g} (median {np.median(levels):.3g})"
    ious = [m["silhouette_iou"] for m in record["meshes"] if m.get("silhouette_iou") is not None]
    return text + (f", silhouette IoU {min(ious):.2f}-{max(ious):.2f}" if ious else "")

from unflat.export.writers import MESH_SUFFIXES


def mesh_summary(paths: list[Path], requested: int) -> str:
    """ "4 of 4 meshes, 1,204-3,002 faces (median 2,310), 0.9-1.8 units across; 8 files (glb, obj)" from
    the files written (one mesh per file stem; the first format is read back)."""
    import numpy as np
    import trimesh

    meshes = [Path(p) for p in paths if Path(p).suffix.lower() in MESH_SUFFIXES]
    stems: dict[Path, Path] = {}
    for path in meshes:
        stems.setdefault(path.with_suffix(""), path)
    faces, sizes = [], []
    for path in stems.values():
        mesh = trimesh.load(path, force="mesh", process=False)
        faces.append(len(mesh.faces))
        sizes.append(float(np.max(mesh.extents)) if len(mesh.vertices) else 0.0)
    formats = sorted({p.suffix.lower().lstrip(".") for p in meshes})
    head = f"{len(stems)} of {requested} meshes"
    if not faces:
        return head
    spread = f"{min(faces):,}" if min(faces) == max(faces) else f"{min(faces):,}-{max(faces):,}"
    return (f"{head}, {spread} faces (median {int(np.median(faces)):,}), {min(sizes):.2g}-{max(sizes):.2g} units "
            f"across; {len(paths)} files ({', '.join(formats)})")
