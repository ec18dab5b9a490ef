"""Every method writes its mesh files through export.pipeline.MeshFiles: one name scheme, one writer, export.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trimesh

from unflat.export.pipeline import MeshFiles, mesh_stem


def test_mesh_stem_is_the_one_scheme():
    assert mesh_stem(3) == "mesh_0003"
    assert mesh_stem(12, 7) == "mesh_0012_class7"


def test_mesh_files_writes_every_format_and_records_settings_and_meshes(tmp_path: Path):
    mesh = trimesh.creation.icosphere(subdivisions=1)
    mesh.metadata.update({"iso_level": 10.0, "silhouette_iou": float("nan"), "other": 1})
    with MeshFiles(tmp_path / "out", ("glb", "ply"), {"threshold": 0.5}) as files:
        paths = files.write(mesh, mesh_stem(0), image="photo.png")
    assert paths == files.paths == [tmp_path / "out" / "mesh_0000.glb", tmp_path / "out" / "mesh_0000.ply"]
    assert all(trimesh.load(p, force="mesh").faces.shape == mesh.faces.shape for p in paths)
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record == {"settings": {"threshold": 0.5, "formats": ["glb", "ply"]},
                      "meshes": [{"mesh": "mesh_0000", "faces": len(mesh.faces), "iso_level": 10.0,
                                  "silhouette_iou": None, "image": "photo.png"}]}


def test_mesh_files_writes_no_record_when_the_export_fails(tmp_path: Path):
    with pytest.raises(RuntimeError), MeshFiles(tmp_path, ("glb",), {}) as files:
        files.write(trimesh.creation.box(), mesh_stem(1))
        raise RuntimeError("interrupted")
    assert (tmp_path / "mesh_0001.glb").is_file() and not (tmp_path / "export.json").exists()
