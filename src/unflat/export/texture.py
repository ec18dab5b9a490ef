"""UV unwrapping (xatlas charts, or a grid atlas for big meshes) and texture baking from a colour field.

UV convention (trimesh's and OBJ's): ``u`` grows to the right of the image, ``v`` grows upwards,
so texel (row r, column c) of an H x W image has its centre at
``(u, v) = ((c + 0.5) / W, 1 - (r + 0.5) / H)``. glTF writers flip ``v`` on export.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import trimesh
from PIL import Image
from scipy import ndimage

from unflat.geometry.mesh_ops import ColourFn, query_colours

UVMethod = Literal["auto", "xatlas", "grid"]
"""How to unwrap: "xatlas" cuts the surface into charts (few seams, nice to edit; slow on big meshes:
seconds for 20k faces, minutes for 100k); "grid" gives every face its own cell of a regular atlas
(instant at any size, seams everywhere, which baking handles); "auto" uses xatlas up to
``XATLAS_MAX_FACES`` faces and grid above, and grid whenever xatlas fails."""
XATLAS_MAX_FACES = 20_000
UV_TEXTURE_SIZE = "unflat_uv_texture_size"  # mesh.metadata key: texture side the UVs were laid out for
GRID_CELL = "unflat_uv_grid_cell"  # mesh.metadata key: cell side of a grid atlas
GRID_MIN_CELL = 4  # texels per cell side: the smallest that keeps the two triangles of a cell apart


def unwrap_uv(mesh: trimesh.Trimesh, texture_size: int = 1024, method: UVMethod = "auto") -> trimesh.Trimesh:
    """A copy of ``mesh`` with per-vertex UVs [V',2] in [0,1] (``mesh.visual.uv``).

    Vertices on seams are duplicated (one copy per chart), so V' >= V; positions and faces are
    otherwise unchanged.
    """
    if len(mesh.faces) == 0:
        raise ValueError("cannot unwrap a mesh without faces")
    if method not in ("auto", "xatlas", "grid"):
        raise ValueError(f"unknown UV method {method!r}; use auto, xatlas or grid")
    if method == "xatlas" or (method == "auto" and len(mesh.faces) <= XATLAS_MAX_FACES):
        try:
            vmapping, faces, uv = xatlas_uv(mesh, texture_size)
        except RuntimeError as error:
            if method == "xatlas":
                raise
            warnings.warn(f"{error}; using the grid atlas instead", stacklevel=2)
        else:
            return _with_uv(mesh.vertices[vmapping], faces, uv, texture_size)
    vertices, faces, uv = grid_atlas_uv(mesh, texture_size)
    side, cell = grid_atlas_size(len(mesh.faces), texture_size, warn=False)
    unwrapped = _with_uv(vertices, faces, uv, side)
    unwrapped.metadata[GRID_CELL] = cell
    return unwrapped


def xatlas_uv(mesh: trimesh.Trimesh, texture_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas charts, computed in a child process -> (vertex mapping [V'], faces [F,3], uv [V',2]).

    Raises RuntimeError when xatlas crashes or is not installed.
    """
    worker = Path(__file__).with_name("xatlas_worker.py")
    with tempfile.TemporaryDirectory(prefix="unflat-xatlas-") as folder:
        source, target = Path(folder) / "in.npz", Path(folder) / "out.npz"
        np.savez(source, vertices=np.asarray(mesh.vertices, np.float32), faces=np.asarray(mesh.faces, np.uint32))
        result = subprocess.run(
            [sys.executable, str(worker), str(source), str(target), str(texture_size)],
            capture_output=True, text=True, cwd=folder,  # a crash's core file, if any, goes away with the folder
        )
        if result.returncode != 0 or not target.exists():
            detail = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
            raise RuntimeError(f"xatlas failed on a mesh of {len(mesh.faces)} faces ({detail[0]})")
        with np.load(target) as data:
            return data["vmapping"].astype(np.int64), data["indices"].astype(np.int64), data["uvs"].astype(np.float64)


def grid_atlas_uv(mesh: trimesh.Trimesh, texture_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every face gets half of a square cell of ``c`` x ``c`` texels -> (vertices [3F,3], faces [F,3], uv [3F,2]).

    Faces 2k and 2k+1 share cell k: one takes the lower-left half, the other the upper-right, with
    a gap of two texels along the diagonal and half a texel at the cell border, so bilinear
    filtering inside a triangle never reads a texel that belongs to another triangle. The texture
    needed is ``ceil(sqrt(F/2)) * c`` texels wide with ``c >= 4``; when that exceeds ``texture_size``,
    the UVs are laid out for the larger size (``grid_atlas_size`` says which) and a warning is given.
    """
    faces = np.asarray(mesh.faces)
    count = len(faces)
    side, cell = grid_atlas_size(count, texture_size)
    per_row = side // cell
    pair = np.arange(count) // 2
    x0 = (pair % per_row) * cell
    y0 = (pair // per_row) * cell
    leg = cell - 3.0
    lower = np.array([[0.5, 0.5], [0.5 + leg, 0.5], [0.5, 0.5 + leg]])  # local (x, y) texel coords, y down
    upper = cell - lower
    corners = np.where((np.arange(count) % 2 == 0)[:, None, None], lower, upper)  # [F,3,2]
    corners = corners + np.stack([x0, y0], axis=1)[:, None, :]
    uv = np.stack([corners[..., 0] / side, 1.0 - corners[..., 1] / side], axis=-1).reshape(-1, 2)
    vertices = np.asarray(mesh.vertices)[faces.reshape(-1)]
    return vertices, np.arange(3 * count).reshape(count, 3), uv


def grid_atlas_texels(
    uv: np.ndarray, faces: np.ndarray, side: int, cell: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every texel of the used cells of a grid atlas, with its triangle and the barycentric
    weights of the triangle's nearest point -> (face ids [T], weights [T,3], texels (row, col) [T,2]).

    No rasterisation is needed: in a cell, texel (row j, column i) belongs to the lower-left
    triangle when ``i + j <= cell - 2``, else to the upper-right one; that is the triangle whose
    bilinear lookups read it.
    """
    count = len(faces)
    per_row = side // cell
    pair = np.arange((count + 1) // 2)
    local_row, local_col = np.divmod(np.arange(cell * cell), cell)
    upper = (local_row + local_col > cell - 2).astype(np.int64)
    face = (2 * pair[:, None] + upper[None, :]).reshape(-1)
    rows = ((pair // per_row) * cell)[:, None] + local_row[None, :]
    cols = ((pair % per_row) * cell)[:, None] + local_col[None, :]
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    keep = face < count
    face, rows, cols = face[keep], rows[keep], cols[keep]
    centres = np.stack([(cols + 0.5) / side, 1.0 - (rows + 0.5) / side], axis=1)
    _, barycentric = nearest_on_triangle(centres, uv[faces[face]])
    return face, barycentric, np.stack([rows, cols], axis=1)


def grid_atlas_size(face_count: int, texture_size: int, warn: bool = True) -> tuple[int, int]:
    """(texture side, cell side) in texels of the grid atlas for ``face_count`` faces."""
    per_row = math.ceil(math.sqrt(math.ceil(face_count / 2)))
    cell = max(GRID_MIN_CELL, texture_size // per_row)
    side = max(texture_size, per_row * cell)
    if side > texture_size and warn:
        warnings.warn(
            f"{face_count} faces need a {side}x{side} texture for the grid atlas (asked: {texture_size}); "
            "decimate the mesh (CleanupConfig.face_budget) for a smaller one",
            stacklevel=3,
        )
    return side, cell


def bake_texture(
    mesh: trimesh.Trimesh,
    colour_fn: ColourFn,
    texture_size: int = 1024,
    uv_method: UVMethod = "auto",
    gutter: int = 4,
    chunk: int = 65536,
    device: torch.device | str | None = None,
) -> trimesh.Trimesh:
    """A textured copy of ``mesh``: unwrap it (unless it has UVs), then give each texel the
    colour ``colour_fn`` has at the surface point the texel covers.

    gutter: texels around each chart (and between grid-atlas triangles) that also get a colour:
        the field's colour at the nearest point of the nearest triangle, so bilinear filtering and
        mip-maps never pull the empty background into the surface.
    device: where the colour queries run (None: the colour function's parameters' device, or CPU).
    Returns a mesh whose ``visual`` is a ``TextureVisuals`` with a PBR material whose
    ``baseColorTexture`` is a PIL RGB image (``texture_size`` square, larger only for a grid atlas
    of a very large mesh).
    """
    uv = getattr(mesh.visual, "uv", None)
    has_uv = uv is not None and len(uv) == len(mesh.vertices)
    unwrapped = mesh if has_uv else unwrap_uv(mesh, texture_size, uv_method)
    uv = np.asarray(unwrapped.visual.uv, dtype=np.float64)
    faces = np.asarray(unwrapped.faces)
    size = int(unwrapped.metadata.get(UV_TEXTURE_SIZE, texture_size))
    if GRID_CELL in unwrapped.metadata:
        face_ids, barycentric, texels = grid_atlas_texels(uv, faces, size, int(unwrapped.metadata[GRID_CELL]))
    else:
        face_ids, barycentric, texels = rasterise_uv(uv, faces, size)
        face_ids, barycentric, texels = extend_to_gutter(uv, faces, size, face_ids, texels, barycentric, gutter)

    corners = np.asarray(unwrapped.vertices)[faces[face_ids]]  # [T,3,3]
    points = np.einsum("tk,tkd->td", barycentric, corners)
    rgb = query_colours(colour_fn, points, chunk, device)
    image = np.zeros((size, size, 3), dtype=np.float32)
    image[texels[:, 0], texels[:, 1]] = rgb
    texture = Image.fromarray(np.rint(image * 255).astype(np.uint8), mode="RGB")

    material = trimesh.visual.material.PBRMaterial(
        name="unflat_baked", baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=1.0
    )
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(vertices=unwrapped.vertices.copy(), faces=faces.copy(), visual=visual, process=False)


def rasterise_uv(
    uv: np.ndarray, faces: np.ndarray, size: int, chunk: int = 1 << 21
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre of a size x size texture.

    uv: [V,2] in [0,1]; faces: [F,3].
    Returns (face id [T], barycentric weights [T,3], texel (row, column) [T,2]) for the T covered
    texels; where triangles overlap the last one wins.

    Vectorised: every triangle's bounding box of texels becomes candidate (triangle, texel)
    pairs (built with ``np.repeat``, in chunks of ``chunk`` pairs) that are kept when all three
    barycentric weights are >= 0.
    """
    pix = np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], axis=1)  # (x=col, y=row) of texel centres
    tri = pix[faces]  # [F,3,2]
    lo = np.clip(np.ceil(tri.min(axis=1)), 0, size - 1).astype(np.int64)
    hi = np.clip(np.floor(tri.max(axis=1)), 0, size - 1).astype(np.int64)
    width = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    height = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    counts = width * height

    # Barycentric coordinates via the edge functions of each triangle.
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    valid = np.abs(area) > 1e-12
    counts = np.where(valid, counts, 0)

    out_faces, out_bary, out_texels = [], [], []
    face_order = np.nonzero(counts)[0]
    cumulative = np.cumsum(counts[face_order])
    start = 0
    while start < len(face_order):
        # Take as many whole triangles as fit in one chunk (at least one).
        offset = cumulative[start - 1] if start > 0 else 0
        stop = max(int(np.searchsorted(cumulative, offset + chunk, side="right")), start + 1)
        ids = face_order[start:stop]
        n = counts[ids]
        face = np.repeat(ids, n)
        local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        col = lo[face, 0] + local % width[face]
        row = lo[face, 1] + local // width[face]
        px, py = col.astype(np.float64), row.astype(np.float64)
        fa, fb, fc = a[face], b[face], c[face]
        w0 = ((fb[:, 0] - px) * (fc[:, 1] - py) - (fb[:, 1] - py) * (fc[:, 0] - px)) / area[face]
        w1 = ((fc[:, 0] - px) * (fa[:, 1] - py) - (fc[:, 1] - py) * (fa[:, 0] - px)) / area[face]
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        out_faces.append(face[inside])
        out_bary.append(np.stack([w0, w1, w2], axis=1)[inside])
        out_texels.append(np.stack([row, col], axis=1)[inside])
        start = stop
    if not out_faces:
        return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 2), np.int64)
    return np.concatenate(out_faces), np.clip(np.concatenate(out_bary), 0, 1), np.concatenate(out_texels)


def extend_to_gutter(
    uv: np.ndarray,
    faces: np.ndarray,
    size: int,
    face_ids: np.ndarray,
    texels: np.ndarray,
    barycentric: np.ndarray,
    gutter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add the empty texels within ``gutter`` texels of covered ones, each mapped to the nearest
    point of the nearest triangle. Candidates are the triangles of the covered texels in its 3x3
    neighbourhood and of its nearest covered texel; the closest in UV space wins, so a texel
    between two triangles takes the one that bilinear filtering will read it for.
    Returns the extended (face ids [T'], barycentric weights [T',3], texels [T',2])."""
    if gutter <= 0 or len(face_ids) == 0:
        return face_ids, barycentric, texels
    owner = np.full((size, size), -1, dtype=np.int64)
    owner[texels[:, 0], texels[:, 1]] = face_ids
    distance, (near_row, near_col) = ndimage.distance_transform_edt(owner < 0, return_indices=True)
    rows, cols = np.nonzero((owner < 0) & (distance <= gutter))
    padded = np.pad(owner, 1, constant_values=-1)
    candidates = [owner[near_row[rows, cols], near_col[rows, cols]]]
    candidates += [padded[rows + 1 + dr, cols + 1 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    candidates = np.stack(candidates, axis=1)  # [N,9]; -1 = no triangle there
    centres = np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=1)
    n, k = candidates.shape
    tri = uv[faces[np.maximum(candidates, 0)]].reshape(n * k, 3, 2)
    dist, bary = nearest_on_triangle(np.repeat(centres, k, axis=0), tri)
    dist = np.where(candidates >= 0, dist.reshape(n, k), np.inf)
    best = dist.argmin(axis=1)
    extra_faces = candidates[np.arange(n), best]
    extra_bary = bary.reshape(n, k, 3)[np.arange(n), best]
    return (
        np.concatenate([face_ids, extra_faces]),
        np.concatenate([barycentric, extra_bary]),
        np.concatenate([texels, np.stack([rows, cols], axis=1)]),
    )


def nearest_on_triangle(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance [N] from 2D points [N,2] to triangles [N,3,2], and the barycentric weights [N,3] of
    the nearest point of each triangle (the point itself when inside)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    safe = np.where(np.abs(area) < 1e-20, 1e-20, area)

    def weights(q: np.ndarray) -> np.ndarray:
        w0 = ((b[:, 0] - q[:, 0]) * (c[:, 1] - q[:, 1]) - (b[:, 1] - q[:, 1]) * (c[:, 0] - q[:, 0])) / safe
        w1 = ((c[:, 0] - q[:, 0]) * (a[:, 1] - q[:, 1]) - (c[:, 1] - q[:, 1]) * (a[:, 0] - q[:, 0])) / safe
        return np.stack([w0, w1, 1 - w0 - w1], axis=1)

    inside = (weights(points) >= 0).all(axis=1)
    best = points.copy()
    best_distance = np.full(len(points), np.inf)
    for p0, p1 in ((a, b), (b, c), (c, a)):
        edge = p1 - p0
        t = np.clip(np.einsum("ij,ij->i", points - p0, edge) / np.maximum(np.einsum("ij,ij->i", edge, edge), 1e-30), 0, 1)
        foot = p0 + t[:, None] * edge
        d = np.linalg.norm(points - foot, axis=1)
        closer = d < best_distance
        best[closer], best_distance[closer] = foot[closer], d[closer]
    best[inside], best_distance[inside] = points[inside], 0.0
    return best_distance, np.clip(weights(best), 0, 1)


def _with_uv(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, texture_size: int) -> trimesh.Trimesh:
    visual = trimesh.visual.TextureVisuals(uv=uv)
    mesh = trimesh.Trimesh(vertices=np.asarray(vertices), faces=faces, visual=visual, process=False)
    mesh.metadata[UV_TEXTURE_SIZE] = texture_size  # the texture side the UV layout was made for
    return mesh


def textured_mesh(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, texture: np.ndarray,
                  name: str = "unflat") -> trimesh.Trimesh:
    """A mesh with a given UV layout and texture image, as a glTF PBR material (matte, double-sided).

    vertices: [V,3]; faces: [F,3] into vertices; uv: [V,2] in unflat's image convention (``v`` runs down the
    rows, as ``grid_sample`` reads a texture), flipped here to trimesh's (``v`` up); texture: uint8 [T,T,3].
    """
    uv = np.asarray(uv, np.float64).copy()
    uv[:, 1] = 1 - uv[:, 1]
    material = trimesh.visual.material.PBRMaterial(
        name=name, baseColorTexture=Image.fromarray(np.asarray(texture, np.uint8), mode="RGB"),
        metallicFactor=0.0, roughnessFactor=1.0, doubleSided=True,
    )
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(vertices=np.asarray(vertices), faces=np.asarray(faces), visual=visual, process=False)
