"""One line about exported meshes (how many, how big), for `unflat export`: files alone do not say whether the
meshes are any good (an untrained generator writes few, tiny meshes)."""

from __future__ import annotations

from pathlib import Path

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
