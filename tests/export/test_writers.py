"""Mesh files round-trip through trimesh; the GLB is a well-formed glTF 2.0 binary with a PNG.

Vertex counts: a textured mesh has duplicated vertices on UV seams (one per chart). GLB and OBJ
keep them (each copy has its own UV), so loading with ``process=False`` gives exactly the written
vertex count. PLY stores colours per vertex and no UVs, so the writer joins seam copies again:
its count equals the mesh before unwrapping.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import trimesh

from unflat.export.texture import bake_texture
from unflat.export.writers import save_mesh
from unflat.geometry.mesh_ops import colour_vertices

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plain() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=2, radius=0.7)


@pytest.fixture(scope="module")
def textured(plain: trimesh.Trimesh) -> trimesh.Trimesh:
    return bake_texture(plain, lambda p: (p / 0.7 + 1) / 2, texture_size=64)


def sorted_triangles(mesh: trimesh.Trimesh) -> np.ndarray:
    """Order-independent geometry fingerprint: the sorted corner coordinates of all faces."""
    return np.sort(np.round(mesh.triangles.reshape(len(mesh.faces), -1), 5), axis=0)


def texture_of(mesh: trimesh.Trimesh):
    material = mesh.visual.material
    return getattr(material, "baseColorTexture", None) or getattr(material, "image", None)


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_textured_round_trip(tmp_path, textured, suffix):
    path = save_mesh(textured, tmp_path / f"shape{suffix}")
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == len(textured.vertices)
    assert len(loaded.faces) == len(textured.faces)
    np.testing.assert_allclose(sorted_triangles(loaded), sorted_triangles(textured), atol=1e-4)
    image = texture_of(loaded)
    assert image is not None and image.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), np.asarray(textured.visual.material.baseColorTexture))
    np.testing.assert_allclose(loaded.visual.uv, textured.visual.uv, atol=1e-5)


def test_obj_writes_material_and_texture_named_after_it(tmp_path, textured):
    save_mesh(textured, tmp_path / "a.obj")
    save_mesh(textured, tmp_path / "b.obj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mtl", "a.obj", "a.png", "b.mtl", "b.obj", "b.png"]
    mtl = (tmp_path / "a.mtl").read_text()
    assert "map_Kd a.png" in mtl and "Kd 1.00000000 1.00000000 1.00000000" in mtl
    assert "mtllib a.mtl" in (tmp_path / "a.obj").read_text()
    assert (tmp_path / "a.png").read_bytes().startswith(PNG_SIGNATURE)


def test_glb_structure(tmp_path, textured):
    data = save_mesh(textured, tmp_path / "shape.glb").read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A  # "JSON"
    gltf = json.loads(data[20 : 20 + json_length])
    bin_offset = 20 + json_length
    bin_length, bin_type = struct.unpack_from("<II", data, bin_offset)
    assert bin_type == 0x004E4942  # "BIN\0"
    binary = data[bin_offset + 8 : bin_offset + 8 + bin_length]
    assert gltf["asset"]["version"] == "2.0"
    for key in ("buffers", "bufferViews", "accessors", "meshes", "materials", "textures", "images"):
        assert gltf.get(key), f"missing {key}"
    image = gltf["images"][0]
    assert image["mimeType"] == "image/png"
    view = gltf["bufferViews"][image["bufferView"]]
    assert binary[view.get("byteOffset", 0) :].startswith(PNG_SIGNATURE)
    material = gltf["materials"][0]
    assert "baseColorTexture" in material["pbrMetallicRoughness"]
    assert "TEXCOORD_0" in gltf["meshes"][0]["primitives"][0]["attributes"]


def test_ply_has_vertex_colours_and_seams_joined(tmp_path, plain, textured):
    loaded = trimesh.load(save_mesh(textured, tmp_path / "shape.ply"), process=False)
    assert len(loaded.vertices) == len(plain.vertices) and len(loaded.faces) == len(plain.faces)
    np.testing.assert_allclose(sorted_triangles(loaded), sorted_triangles(plain), atol=1e-5)
    colours = loaded.visual.vertex_colors[:, :3].astype(float) / 255
    expected = (loaded.vertices / 0.7 + 1) / 2
    assert np.abs(colours - expected).mean() < 0.03  # sampled from the 64x64 texture


def test_vertex_coloured_glb_and_ply_keep_colours(tmp_path, plain):
    coloured = colour_vertices(plain, lambda p: (p / 0.7 + 1) / 2)
    for suffix in (".glb", ".ply"):
        loaded = trimesh.load(save_mesh(coloured, tmp_path / f"c{suffix}"), force="mesh", process=False)
        assert len(loaded.vertices) == len(plain.vertices)
        np.testing.assert_array_equal(loaded.visual.vertex_colors, coloured.visual.vertex_colors)


def test_stl_and_errors(tmp_path, plain):
    loaded = trimesh.load(save_mesh(plain, tmp_path / "deep" / "x.stl"))
    assert loaded.volume == pytest.approx(plain.volume)
    with pytest.raises(ValueError, match="unknown mesh format"):
        save_mesh(plain, tmp_path / "x.fbx")
    with pytest.raises(ValueError, match="empty mesh"):
        save_mesh(trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)), tmp_path / "e.glb")
