"""Field -> finished mesh files in one call: what ``unflat export`` and the methods' ``export`` use.

    density / SDF function --marching cubes--> mesh --cleanup--> --colour (bake | vertex)--> GLB/OBJ/PLY
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
import trimesh
from torch import Tensor

from unflat.export.texture import UVMethod, bake_texture
from unflat.export.writers import save_mesh
from unflat.geometry.marching_cubes import Inside, extract_from_function
from unflat.geometry.mesh_ops import CleanupConfig, ColourFn, cleanup, colour_vertices


@dataclass
class MeshExportConfig:
    """How a 3D field becomes mesh files."""

    resolution: int = 128
    """Marching-cubes grid samples per side."""
    level: float = 0.0
    """Iso-level of the surface (0 for an SDF; e.g. 10 for a NeRF-style density, 0.5 for occupancy)."""
    inside: Inside = "below"
    """Which side of ``level`` is solid: "below" for SDFs, "above" for densities and occupancies."""
    bounds: tuple[float, float] = (-1.0, 1.0)
    """The cube sampled, per axis, in world units."""
    colours: Literal["texture", "vertex", "none"] = "texture"
    """Bake a UV texture (GLB/OBJ carry it; PLY samples it per vertex), store vertex colours, or none."""
    texture_size: int = 1024
    """Side of the baked texture image in texels."""
    uv_method: UVMethod = "auto"
    """UV unwrapping: xatlas charts (up to 20k faces with auto), or a grid atlas (any size, instant)."""
    formats: tuple[str, ...] = ("glb",)
    """File formats to write: any of glb, obj, ply, stl."""
    cleanup: CleanupConfig = field(default_factory=CleanupConfig)
    """Clean-up after marching cubes."""
    chunk: int = 65536
    """Points per field/colour query (bounds memory on large grids)."""


def field_to_mesh(
    field_fn: Callable[[Tensor], Tensor],
    colour_fn: ColourFn | None = None,
    cfg: MeshExportConfig | None = None,
    device: torch.device | str | None = None,
) -> trimesh.Trimesh:
    """Extract, clean and colour the surface of ``field_fn`` (points [N,3] -> values [N])."""
    cfg = cfg or MeshExportConfig()
    mesh = extract_from_function(
        field_fn, cfg.resolution, cfg.bounds, cfg.level, cfg.inside, cfg.chunk, device
    )
    if len(mesh.faces) == 0:
        raise ValueError(
            f"the field never crosses level {cfg.level} inside {cfg.bounds}: nothing to export "
            "(an untrained generator, or the wrong --level / --inside?)"
        )
    mesh = cleanup(mesh, cfg.cleanup)
    if colour_fn is not None and cfg.colours == "texture":
        mesh = bake_texture(mesh, colour_fn, cfg.texture_size, cfg.uv_method, chunk=cfg.chunk, device=device)
    elif colour_fn is not None and cfg.colours == "vertex":
        mesh = colour_vertices(mesh, colour_fn, cfg.chunk, device)
    return mesh


def export_mesh(mesh: trimesh.Trimesh, out_stem: str | Path, formats: tuple[str, ...] = ("glb",)) -> list[Path]:
    """Write ``mesh`` as ``<out_stem>.<format>`` for each format; returns the paths written."""
    out_stem = Path(out_stem)
    return [save_mesh(mesh, out_stem.with_name(f"{out_stem.name}.{fmt.lstrip('.').lower()}")) for fmt in formats]
