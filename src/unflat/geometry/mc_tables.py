"""Marching-cubes lookup tables (Lorensen & Cline 1987): the edge table and the triangle table.

Cube layout (Lorensen's / Bourke's numbering). Corner ``c`` sits at offset ``CORNERS[c]`` (x, y, z) in
{0,1}^3 from the cell's first sample; edge ``e`` joins corners ``EDGES[e]``; bit ``c`` of a cell's
case index is set when corner ``c`` is inside (value above the level).

* ``EDGE_TABLE[case]``: bit ``e`` set when edge ``e`` crosses the surface (its corners disagree).
* ``TRI_TABLE[case]``: up to 5 triangles as edge triples, ``-1`` padded, [256, 15]; every triangle
  is wound counter-clockwise seen from outside (its right-hand normal points out of the solid).
* ``NUM_TRIANGLES[case]``: how many triangles of ``TRI_TABLE[case]`` are used.

The tables are derived here instead of typed in: on each cube face, the surface crosses the face in
segments that separate inside from outside corners; chained across the six faces they close into
polygons, and each polygon is fanned into triangles. A face with two diagonal inside corners (the
classic ambiguity) always separates the inside corners, a rule that looks only at that face, so the two
cells sharing a face cut it the same way and the surface is watertight (Lorensen's original table,
which decides per cube, can leave holes there). Each polygon's fan starts where none of its diagonals
lies in a cube face (such a diagonal can coincide with the neighbour cell's and make an edge of four
triangles). Unambiguous cases give the classic triangulations up to the choice of fan diagonals.
"""

from __future__ import annotations

import numpy as np

CORNERS = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                    [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=np.int64)
"""[8,3] corner offsets (x, y, z)."""

EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4],
                  [0, 4], [1, 5], [2, 6], [3, 7]], dtype=np.int64)
"""[12,2] corner pairs (Lorensen's order, which runs around the bottom and top faces)."""

EDGE_AXIS = np.argmax(np.abs(CORNERS[EDGES[:, 1]] - CORNERS[EDGES[:, 0]]), axis=1)
"""[12] axis (0=x, 1=y, 2=z) along which each edge runs."""

EDGE_ORIGIN = np.minimum(CORNERS[EDGES[:, 0]], CORNERS[EDGES[:, 1]])
"""[12,3] offset of each edge's lower end (where its samples start) from the cell's first sample."""

MAX_TRIANGLES = 5


def _faces_ccw() -> list[list[int]]:
    """The cube's six faces as 4 corners each, counter-clockwise seen from outside the cube."""
    faces = []
    for axis in range(3):
        for side in (0, 1):
            corners = [c for c in range(8) if CORNERS[c, axis] == side]
            normal = np.zeros(3)
            normal[axis] = 1.0 if side else -1.0
            centre = CORNERS[corners].mean(0)
            u = np.zeros(3)
            u[(axis + 1) % 3] = 1.0
            v = np.cross(normal, u)  # (u, v, normal) right-handed: angles grow counter-clockwise from outside
            angle = [np.arctan2((CORNERS[c] - centre) @ v, (CORNERS[c] - centre) @ u) for c in corners]
            faces.append([corners[i] for i in np.argsort(angle)])
    return faces


def _edge_between(a: int, b: int) -> int:
    pair = sorted((a, b))
    for e, (p, q) in enumerate(EDGES):
        if sorted((int(p), int(q))) == pair:
            return e
    raise ValueError(f"corners {a} and {b} share no edge")


def _polygons(case: int, faces: list[list[int]]) -> list[list[int]]:
    """Closed polygons (edge indices) of one case, ordered with the inside on the left seen from outside."""
    inside = [(case >> c) & 1 for c in range(8)]
    following: dict[int, int] = {}  # segment start edge -> end edge
    for face in faces:
        ring = [(face[k], face[(k + 1) % 4]) for k in range(4)]  # counter-clockwise boundary edges
        exits = [k for k, (a, b) in enumerate(ring) if inside[a] and not inside[b]]
        for k in exits:
            # Walk back from the exit through the run of inside corners to the edge that entered it;
            # stopping at the first entry separates diagonal inside corners.
            j = (k - 1) % 4
            while inside[ring[j][0]]:
                j = (j - 1) % 4
            following[_edge_between(*ring[k])] = _edge_between(*ring[j])
    polygons = []
    while following:
        start, polygon = next(iter(following)), []
        edge = start
        while True:
            polygon.append(edge)
            edge = following.pop(edge)
            if edge == start:
                break
        polygons.append(polygon)
    return polygons


def _edge_faces(edge: int) -> set[tuple[int, int]]:
    """The two cube faces (axis, side) that contain an edge."""
    a, b = CORNERS[EDGES[edge, 0]], CORNERS[EDGES[edge, 1]]
    return {(axis, int(a[axis])) for axis in range(3) if a[axis] == b[axis]}


def _fan_start(polygon: list[int]) -> list[int]:
    """The rotation of ``polygon`` whose fan has the fewest diagonals lying in a cube face: such a
    diagonal can coincide with one of the neighbouring cell's and make an edge of four triangles."""

    def on_face_diagonals(rotated: list[int]) -> int:
        return sum(bool(_edge_faces(rotated[0]) & _edge_faces(rotated[i])) for i in range(2, len(rotated) - 1))

    rotations = [polygon[i:] + polygon[:i] for i in range(len(polygon))]
    return min(rotations, key=on_face_diagonals)


def _build() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    faces = _faces_ccw()
    edge_table = np.zeros(256, dtype=np.int64)
    tri_table = np.full((256, 3 * MAX_TRIANGLES), -1, dtype=np.int64)
    num_triangles = np.zeros(256, dtype=np.int64)
    for case in range(256):
        inside = [(case >> c) & 1 for c in range(8)]
        edge_table[case] = sum(1 << e for e, (a, b) in enumerate(EDGES) if inside[a] != inside[b])
        triangles = []
        for polygon in _polygons(case, faces):
            # The chained polygon turns clockwise seen from outside the solid: reverse it, then fan.
            polygon = _fan_start(polygon[::-1])
            triangles += [(polygon[0], polygon[i], polygon[i + 1]) for i in range(1, len(polygon) - 1)]
        if len(triangles) > MAX_TRIANGLES:
            raise AssertionError(f"case {case}: {len(triangles)} triangles")
        num_triangles[case] = len(triangles)
        if triangles:
            tri_table[case, : 3 * len(triangles)] = np.asarray(triangles).reshape(-1)
    return edge_table, tri_table, num_triangles


EDGE_TABLE, TRI_TABLE, NUM_TRIANGLES = _build()
