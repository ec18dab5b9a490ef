"""Field -> finished mesh files in one call: what ``unflat export`` and the methods' ``export`` use.

    density / SDF function --marching cubes--> mesh --cleanup--> --colour (bake | vertex)--> GLB/OBJ/PLY

Every method's mesh files are written here: ``MeshFiles`` names them (``mesh_stem``: one scheme for all
methods), writes them (``export_mesh`` -> ``writers.save_mesh``) and records the settings and each mesh in
``export.json`` beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Literal, Mapping

import torch
import trimesh
from torch import Tensor

from unflat.export.summary import write_export_record
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


RECORDED_METADATA = ("iso_level", "silhouette_iou")
"""``mesh.metadata`` keys copied into a mesh's entry of ``export.json`` when the mesh carries them."""


def mesh_stem(index: int, class_id: int | None = None) -> str:
    """The file stem of an exported sample's mesh: ``mesh_0003``, or ``mesh_0003_class7`` for a class-conditional
    sample (index: the sample's number, e.g. its seed for iggan, its position in the export otherwise)."""
    return f"mesh_{index:04d}" if class_id is None else f"mesh_{index:04d}_class{int(class_id)}"


class MeshFiles:
    """The mesh files of one export into ``out_dir``: ``write`` each mesh (every format in ``formats``), and on
    leaving the ``with`` block without an error ``export.json`` records ``settings`` (plus the formats) and one
    entry per mesh written (its file stem, faces and ``RECORDED_METADATA`` found in ``mesh.metadata``).

        with MeshFiles(out_dir, ("glb", "obj"), {"threshold": 0.5}) as files:
            paths = files.write(mesh, mesh_stem(3))
    """

    def __init__(self, out_dir: str | Path, formats: tuple[str, ...], settings: Mapping[str, Any]) -> None:
        if not formats:
            raise ValueError("no mesh formats given (e.g. ('glb',))")
        self.out_dir = Path(out_dir)
        self.formats = tuple(formats)
        self.settings = {**settings, "formats": list(self.formats)}
        self.records: list[dict[str, Any]] = []
        self.paths: list[Path] = []

    def write(self, mesh: trimesh.Trimesh, stem: str, **record: Any) -> list[Path]:
        """Write ``mesh`` as ``out_dir/<stem>.<format>`` for each format; ``record``: extra facts for its entry."""
        paths = export_mesh(mesh, self.out_dir / stem, self.formats)
        metadata = {k: mesh.metadata[k] for k in RECORDED_METADATA if k in mesh.metadata}
        self.records.append({"mesh": stem, "faces": len(mesh.faces), **metadata, **record})
        self.paths += paths
        return paths

    def __enter__(self) -> "MeshFiles":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            write_export_record(self.out_dir, self.settings, self.records)
