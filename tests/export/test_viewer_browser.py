"""The viewer in a real browser (headless Chromium): a GLB loads with no errors and is drawn.

Needs Debian's ``chromium`` (CI installs it); skipped with a reason when no Chromium is found.
WebGL runs on SwiftShader (software), so no GPU is needed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from unflat.export.texture import bake_texture
from unflat.export.writers import save_mesh
from unflat.export.viewer import make_server

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")

# Console lines that mean the page is broken (Chromium logs every console message at INFO level).
BAD_CONSOLE = re.compile(r"Uncaught|TypeError|ReferenceError|SyntaxError|Refused to|Failed to load|404|THREE\.[A-Za-z]+: Error")


def chromium(url: str, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader", "--no-first-run", "--hide-scrollbars", "--window-size=640,640",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
        "--enable-logging=stderr", "--v=0", *mode, url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line and BAD_CONSOLE.search(line)]


@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "run"
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    save_mesh(bake_texture(sphere, lambda p: (p / 0.8 + 1) / 2, texture_size=128), root / "meshes" / "sphere.glb")
    (root / "samples").mkdir()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(root / "samples" / "grid.png")
    (root / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n{"step": 10, "loss": 0.5}\n')
    server = make_server(root, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()


def test_glb_page_loads_without_errors_and_draws(served: str, tmp_path: Path):
    url = f"{served}_unflat/mesh?file=meshes/sphere.glb"
    result = chromium(url, tmp_path, "--dump-dom")
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body, result.stderr[-2000:]
    assert 'data-status="loaded"' in body.group(0), body.group(0)
    assert "1280 triangles" in body.group(0)
    assert console_errors(result.stderr) == []

    shot = tmp_path / "shot.png"
    result = chromium(url, tmp_path, f"--screenshot={shot}")
    assert shot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # The baked colours are saturated; the page itself is grey/white/dark text only.
    saturated = (pixels.max(-1) - pixels.min(-1)) > 40
    assert saturated.sum() > 2000, "the mesh was not drawn"
    assert console_errors(result.stderr) == []


def test_index_page_renders_without_errors(served: str, tmp_path: Path):
    result = chromium(served, tmp_path, "--dump-dom")
    assert "meshes/sphere.glb" in result.stdout and "samples/grid.png" in result.stdout
    assert 'aria-label="loss"' in result.stdout
    assert console_errors(result.stderr) == []


def test_sampler_asks_the_backend_and_shows_the_image(tmp_path: Path):
    import io

    class SeedColour:
        def __init__(self) -> None:
            self.calls: list[tuple[int, int | None]] = []

        def sample(self, seed: int, class_id: int | None) -> bytes:
            self.calls.append((seed, class_id))
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, "PNG")
            return buffer.getvalue()

    backend = SeedColour()
    (tmp_path / "run").mkdir()
    server = make_server(tmp_path / "run", port=0, backend=backend, quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        result = chromium(server.url, tmp_path, "--dump-dom")
    finally:
        server.shutdown()
        server.server_close()
    assert backend.calls == [(0, None)]  # the page renders seed 0, any class, on load
    assert 'id="sample"' in result.stdout and 'src="/api/sample?seed=0"' in result.stdout
    assert re.search(r'<p id="sample-status">\s*</p>', result.stdout), "the image did not load"
    assert console_errors(result.stderr) == []
