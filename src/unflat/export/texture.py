"""UV unwrapping (xatlas) and texture baking from a colour field.

UV convention (trimesh's and OBJ's): ``u`` grows to the right of the image, ``v`` grows upwards,
so texel (row r, column c) of an H x W image has its centre at
``(u, v) = ((c + 0.5) / W, 1 - (r + 0.5) / H)``. glTF writers flip ``v`` on export.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
import xatlas
from PIL import Image

from unflat.geometry.mesh_ops import ColourFn, query_colours


def unwrap_uv(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Parametrise ``mesh`` with xatlas -> a mesh with per-vertex UVs [V',2] in [0,1].

    Vertices on chart seams are duplicated (one copy per chart), so V' >= V; positions and faces
    are otherwise unchanged.
    """
    if len(mesh.faces) == 0:
        raise ValueError("cannot unwrap a mesh without faces")
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    faces = np.asarray(mesh.faces, dtype=np.uint32)
    vmapping, indices, uvs = xatlas.parametrize(vertices, faces)
    visual = trimesh.visual.TextureVisuals(uv=uvs.astype(np.float64))
    return trimesh.Trimesh(vertices=mesh.vertices[vmapping], faces=indices.astype(np.int64), visual=visual, process=False)


def bake_texture(
    mesh: trimesh.Trimesh,
    colour_fn: ColourFn,
    texture_size: int = 1024,
    dilation: int = 4,
    chunk: int = 65536,
    device: torch.device | str = "cpu",
) -> trimesh.Trimesh:
    """A textured copy of ``mesh``: unwrap (unless it has UVs), then fill each texel with
    ``colour_fn`` at the surface point it covers.

    dilation: texels to grow each chart by, so bilinear filtering and mip-maps do not pull the
        background colour across seams.
    Returns a mesh whose ``visual`` is a ``TextureVisuals`` with a PIL RGB image of
    ``texture_size`` x ``texture_size``.
    """
    uv = getattr(mesh.visual, "uv", None)
    unwrapped = mesh if uv is not None and len(uv) == len(mesh.vertices) else unwrap_uv(mesh)
    uv = np.asarray(unwrapped.visual.uv, dtype=np.float64)
    face_ids, barycentric, texels = rasterise_uv(uv, np.asarray(unwrapped.faces), texture_size)

    corners = np.asarray(unwrapped.vertices)[unwrapped.faces[face_ids]]  # [T,3,3]
    points = np.einsum("tk,tkd->td", barycentric, corners)
    rgb = query_colours(colour_fn, points, chunk, device)

    image = np.zeros((texture_size, texture_size, 3), dtype=np.float32)
    filled = np.zeros((texture_size, texture_size), dtype=bool)
    image[texels[:, 0], texels[:, 1]] = rgb
    filled[texels[:, 0], texels[:, 1]] = True
    image = dilate(image, filled, dilation)
    texture = Image.fromarray(np.rint(image * 255).astype(np.uint8), mode="RGB")

    material = trimesh.visual.material.PBRMaterial(
        name="unflat_baked", baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=1.0
    )
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(vertices=unwrapped.vertices.copy(), faces=unwrapped.faces.copy(), visual=visual, process=False)


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


def dilate(image: np.ndarray, filled: np.ndarray, iterations: int) -> np.ndarray:
    """Grow filled regions of ``image`` [H,W,C] by ``iterations`` texels: each empty texel next to
    filled ones takes the mean of its filled 8-neighbours."""
    image, filled = image.copy(), filled.copy()
    for _ in range(iterations):
        padded = np.pad(image * filled[..., None], ((1, 1), (1, 1), (0, 0)))
        weight = np.pad(filled.astype(np.float32), 1)
        total = np.zeros_like(image)
        count = np.zeros(filled.shape, dtype=np.float32)
        h, w = filled.shape
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                total += padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                count += weight[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        grow = ~filled & (count > 0)
        if not grow.any():
            break
        image[grow] = total[grow] / count[grow, None]
        filled |= grow
    return image
