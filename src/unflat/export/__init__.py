"""Getting results out: mesh files (GLB/OBJ/PLY), baked textures, image grids, turntables, viewer.

The viewer lives in ``unflat.export.viewer`` (imported on demand: it needs no PyTorch model).
"""

from unflat.export.images import (
    make_grid,
    save_grid,
    save_interpolation_video,
    save_mesh_turntable,
    save_turntable,
    to_uint8,
    turntable_cameras,
    write_video,
)
from unflat.export.pipeline import MeshExportConfig, export_mesh, field_to_mesh
from unflat.export.texture import bake_texture, unwrap_uv
from unflat.export.writers import MESH_SUFFIXES, save_mesh

__all__ = [
    "MESH_SUFFIXES",
    "MeshExportConfig",
    "bake_texture",
    "export_mesh",
    "field_to_mesh",
    "make_grid",
    "save_grid",
    "save_interpolation_video",
    "save_mesh",
    "save_mesh_turntable",
    "save_turntable",
    "to_uint8",
    "turntable_cameras",
    "unwrap_uv",
    "write_video",
]
