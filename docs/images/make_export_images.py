"""Regenerates the images in docs/images/ used by docs/export.md and docs/viewer.md.

    PYTHONPATH=src PYOPENGL_PLATFORM=osmesa python docs/images/make_export_images.py [OUT_FOLDER]

An embedded synthetic chair is turned into an occupancy field, which goes through the same path a
trained generator's field takes: marching cubes -> clean-up -> baked texture -> GLB/OBJ/PLY,
turntable GIF and a view grid; then the viewer is screenshotted with headless Chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from unflat.data.synth import make_shape
from unflat.export import MeshExportConfig, export_mesh, field_to_mesh, save_grid, save_mesh_turntable
from unflat.export.images import fit_radius, turntable_cameras
from unflat.export.viewer import make_server
from unflat.geometry.mesh_ops import CleanupConfig
from unflat.render.pyrender_backend import PyrenderRenderer

DOCS = Path(__file__).parent


def chair_fields():
    """Occupancy (voxelised, filled) and colour (nearest coloured surface sample) of a synth chair."""
    surface = make_shape("chair", seed=3).mesh
    voxels = surface.voxelized(pitch=2 / 128).fill()

    def occupancy(points: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(voxels.is_filled(points.numpy()).astype(np.float32))

    samples, face = trimesh.sample.sample_surface(surface, 200_000, seed=0)
    tree = cKDTree(samples)
    sample_rgb = surface.visual.face_colors[face, :3].astype(np.float32) / 255

    def colour(points: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sample_rgb[tree.query(points.numpy())[1]])

    return occupancy, colour


def main(out: Path) -> None:
    occupancy, colour = chair_fields()
    cfg = MeshExportConfig(resolution=96, level=0.5, inside="above", texture_size=512, colours="texture",
                           cleanup=CleanupConfig(keep_components=1, smoothing="taubin", smoothing_iterations=8))
    mesh = field_to_mesh(occupancy, colour, cfg)
    export_mesh(mesh, out / "meshes" / "chair", ("glb", "obj", "ply"))
    renderer = PyrenderRenderer(160, background=(1.0, 1.0, 1.0), supersample=2)
    save_mesh_turntable(mesh, DOCS / "turntable.gif", renderer, frames=24, elevation=20)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    shutil.copy(DOCS / "turntable.gif", out / "samples" / "turntable.gif")
    views = turntable_cameras(8, elevation=25, radius=fit_radius(1.0, 30.0))
    save_grid(renderer.render(mesh, views).rgb, out / "samples" / "views.png", nrow=4)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium not found: skipping viewer screenshots", file=sys.stderr)
        return
    server = make_server(out, port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as profile:
        for name, url, size in [
            ("viewer-index.png", server.url, "1000,760"),
            ("viewer-mesh.png", server.url + "_unflat/mesh?file=meshes/chair.glb", "900,640"),
        ]:
            subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                            "--enable-unsafe-swiftshader", "--hide-scrollbars", f"--user-data-dir={profile}",
                            f"--window-size={size}", "--virtual-time-budget=10000",
                            f"--screenshot={DOCS / name}", url], check=True, capture_output=True, timeout=120)
    server.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="unflat-docs-")))
