"""Write meshes to disk; the format follows the file suffix.

| suffix | what is written |
|---|---|
| ``.glb`` | binary glTF 2.0, texture (PNG) or vertex colours embedded in the one file |
| ``.obj`` | OBJ + ``<name>.mtl`` + ``<name>.png`` texture next to it (vertex colours as ``v x y z r g b``) |
| ``.ply`` | binary PLY with per-vertex RGBA colours (a texture is sampled at the vertices) |
| ``.stl`` | geometry only |
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import trimesh

MESH_SUFFIXES = (".glb", ".obj", ".ply", ".stl")


def save_mesh(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write ``mesh`` to ``path`` in the format named by its suffix; returns the path.

    Parent folders are created. Raises ValueError for an empty mesh or an unknown suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ValueError(f"unknown mesh format {path.suffix!r}; use one of {', '.join(MESH_SUFFIXES)}")
    if len(mesh.faces) == 0:
        raise ValueError(f"refusing to write an empty mesh to {path} (the field never crossed its level?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".glb":
        path.write_bytes(trimesh.exchange.gltf.export_glb(mesh, include_normals=True))
    elif suffix == ".obj":
        _write_obj(mesh, path)
    elif suffix == ".ply":
        path.write_bytes(trimesh.exchange.ply.export_ply(_with_vertex_colours(mesh), encoding="binary"))
    else:
        path.write_bytes(trimesh.exchange.stl.export_stl(mesh))
    return path


def _write_obj(mesh: trimesh.Trimesh, path: Path) -> None:
    """OBJ with the material library and texture image named after the OBJ file."""
    text, extra_files = trimesh.exchange.obj.export_obj(
        mesh, include_normals=True, include_texture=True, return_texture=True, mtl_name=f"{path.stem}.mtl"
    )
    # trimesh names the texture after the material; rename it after the OBJ so that two
    # meshes exported into one folder do not overwrite each other's textures.
    renames = {}
    for name in list(extra_files):
        if not name.endswith(".mtl"):
            new_name = f"{path.stem}{Path(name).suffix}"
            renames[name] = new_name
            extra_files[new_name] = extra_files.pop(name)
    mtl_name = f"{path.stem}.mtl"
    if mtl_name in extra_files:
        mtl = extra_files[mtl_name].decode("utf-8")
        for old, new in renames.items():
            mtl = mtl.replace(old, new)
        if "map_Kd" in mtl:
            # The texture carries the colour; most viewers multiply it by Kd (trimesh writes 0.4).
            mtl = re.sub(r"^Kd .*$", "Kd 1.00000000 1.00000000 1.00000000", mtl, flags=re.MULTILINE)
        extra_files[mtl_name] = mtl.encode("utf-8")
    path.write_text(text)
    for name, data in extra_files.items():
        (path.parent / name).write_bytes(data)


def _with_vertex_colours(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """PLY stores colours per vertex: sample a texture at the vertices' UVs when there is one."""
    if isinstance(mesh.visual, trimesh.visual.TextureVisuals) and mesh.visual.uv is not None:
        colours = mesh.visual.to_color().vertex_colors
        coloured = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_colors=np.asarray(colours), process=False)
        # UV seams duplicated vertices; without UVs the copies are redundant, so join them again.
        coloured.merge_vertices(merge_tex=True, merge_norm=True)
        return coloured
    return mesh
