"""Watertight building blocks for the procedural categories, in a +Y-up world.

Every function returns a closed, consistently wound ``trimesh.Trimesh`` (a solid), so a shape
made of them is a union of watertight parts. Parts may overlap; they are not boolean-merged
(no boolean library is needed), which renders identically and keeps generation fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

# Rotates trimesh's Z-up constructions (revolve) into unflat's Y-up world: (x, y, z) -> (x, z, -y).
Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass
class Part:
    """One named, coloured, watertight piece of a shape."""

    name: str
    mesh: trimesh.Trimesh
    color: tuple[int, int, int]
    material: str = "matte"


@dataclass
class SynthShape:
    """A generated shape.

    mesh: all parts concatenated, with per-vertex RGBA colours, normalised to the unit sphere
        (so inside [-1,1]^3), +Y up, resting orientation (front facing +Z).
    parts: the pieces (same normalisation), each watertight.
    params: the sampled parameters that define the shape (for inspection and tests).
    """

    category: str
    seed: int
    mesh: trimesh.Trimesh
    parts: list[Part]
    params: dict[str, float | int | str] = field(default_factory=dict)


def translate(mesh: trimesh.Trimesh, offset: np.ndarray | tuple[float, float, float]) -> trimesh.Trimesh:
    mesh.apply_translation(np.asarray(offset, dtype=np.float64))
    return mesh


def box(size: tuple[float, float, float], center: tuple[float, float, float] = (0, 0, 0)) -> trimesh.Trimesh:
    """Axis-aligned box with full side lengths ``size`` (x, y, z)."""
    return translate(trimesh.creation.box(extents=np.asarray(size, dtype=np.float64)), center)


def rod(start: np.ndarray | tuple, end: np.ndarray | tuple, radius: float, sections: int = 16) -> trimesh.Trimesh:
    """Solid cylinder from ``start`` to ``end``."""
    return trimesh.creation.cylinder(radius=radius, segment=np.array([start, end], dtype=np.float64), sections=sections)


def revolve_y(profile: np.ndarray, sections: int = 48, center: tuple[float, float, float] = (0, 0, 0)) -> trimesh.Trimesh:
    """Solid of revolution about the vertical (Y) axis.

    profile: [K,2] closed polygon of (radius >= 0, height) points, counter-clockwise in the
        (radius, height) plane; points on the axis (radius 0) close the solid there.
    """
    profile = np.asarray(profile, dtype=np.float64)
    if not np.allclose(profile[0], profile[-1]):
        profile = np.vstack([profile, profile[:1]])
    mesh = trimesh.creation.revolve(profile, sections=sections)
    mesh.apply_transform(Z_UP_TO_Y_UP)
    if mesh.volume < 0:
        mesh.invert()
    return translate(mesh, center)


def tube(path: np.ndarray, radius: float, sections: int = 12) -> trimesh.Trimesh:
    """A solid round tube swept along a polyline ``path`` [K,3] (K >= 2), capped at both ends.

    Frames are parallel-transported along the path so the tube does not twist.
    """
    path = np.asarray(path, dtype=np.float64)
    tangents = np.gradient(path, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    helper = np.array([0.0, 1.0, 0.0]) if abs(tangents[0, 1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    normal = np.cross(tangents[0], helper)
    normal /= np.linalg.norm(normal)
    angles = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    rings = []
    for k, t in enumerate(tangents):
        if k > 0:  # parallel transport: remove the component along the new tangent
            normal = normal - np.dot(normal, t) * t
            normal /= np.linalg.norm(normal)
        binormal = np.cross(t, normal)
        rings.append(path[k] + radius * (np.cos(angles)[:, None] * normal + np.sin(angles)[:, None] * binormal))
    vertices = np.concatenate([np.concatenate(rings), path[[0, -1]]])
    n, s = len(path), sections
    faces = []
    for k in range(n - 1):
        for j in range(s):
            a, b = k * s + j, k * s + (j + 1) % s
            c, d = a + s, b + s
            faces += [[a, b, d], [a, d, c]]
    start, end = n * s, n * s + 1
    for j in range(s):
        faces.append([start, (j + 1) % s, j])
        faces.append([end, (n - 1) * s + j, (n - 1) * s + (j + 1) % s])
    mesh = trimesh.Trimesh(vertices, np.array(faces), process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def arc_points(center: np.ndarray, radius: float, start_deg: float, end_deg: float, axis_u: np.ndarray,
               axis_v: np.ndarray, count: int = 24) -> np.ndarray:
    """Points ``center + radius (cos a * u + sin a * v)`` for a from start to end (degrees) -> [count,3]."""
    a = np.radians(np.linspace(start_deg, end_deg, count))
    return np.asarray(center) + radius * (np.cos(a)[:, None] * np.asarray(axis_u) + np.sin(a)[:, None] * np.asarray(axis_v))


def jitter_color(rng: np.random.Generator, base: tuple[int, int, int], amount: float = 18.0) -> tuple[int, int, int]:
    """A nearby colour, so instances of one palette entry still differ a little."""
    c = np.clip(np.asarray(base, dtype=np.float64) + rng.normal(0, amount, 3), 0, 255)
    return tuple(int(v) for v in np.rint(c))


def assemble(category: str, seed: int, parts: list[Part], params: dict) -> SynthShape:
    """Colour the parts, concatenate them and normalise everything to the unit sphere."""
    # Centre of the bounding box to the origin; farthest vertex at distance 1 (so inside [-1,1]^3).
    all_vertices = np.concatenate([p.mesh.vertices for p in parts])
    center = (all_vertices.min(0) + all_vertices.max(0)) / 2
    scale = 1.0 / np.linalg.norm(all_vertices - center, axis=1).max()
    coloured = []
    for part in parts:
        part.mesh.apply_translation(-center)
        part.mesh.apply_scale(scale)
        rgba = np.array([*part.color, 255], dtype=np.uint8)
        part.mesh.visual.vertex_colors = np.tile(rgba, (len(part.mesh.vertices), 1))
        coloured.append(part.mesh)
    mesh = trimesh.util.concatenate(coloured)
    params = {**params, "normalize_scale": float(scale)}
    return SynthShape(category=category, seed=seed, mesh=mesh, parts=parts, params=params)


def choice(rng: np.random.Generator, options: list):
    """One of ``options``, drawn with ``rng`` (index draw, so results are stable across numpy versions)."""
    return options[int(rng.integers(len(options)))]
