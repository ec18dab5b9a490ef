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

# Console messages that mean the page is broken (Chromium logs every console message at INFO level).
BAD_CONSOLE = re.compile(r"Uncaught|TypeError|ReferenceError|SyntaxError|Refused to|Failed to load|\b404\b|THREE\.[A-Za-z]+: Error")
# Chromium's prefix of a console line: [pid:tid:MMDD/hhmmss.micros:INFO:CONSOLE(line)] or [...:CONSOLE:line]
CONSOLE_PREFIX = re.compile(r"^\[[^\]]*:CONSOLE[^\]]*\] ?")


def chromium(url: str, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader", "--no-first-run", "--hide-scrollbars", "--window-size=640,640",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
        "--enable-logging=stderr", "--v=0", *mode, url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    """Console lines whose message (not the prefix: its timestamp's digits once held '404', a flake) is an error."""
    return [line for line in stderr.splitlines()
            if (prefix := CONSOLE_PREFIX.match(line)) and BAD_CONSOLE.search(line[prefix.end():])]


def test_console_errors_reads_the_message_not_the_timestamp():
    """The flake of issue #26: a benign driver message logged at 06:23:34.404899 was taken for an HTTP 404."""
    benign = ('[22364:22364:1203/062334.404899:INFO:CONSOLE:0] "[.WebGL-0x3be400172200]GL Driver Message (OpenGL, '
              'Performance, GL_CLOSE_PATH_NV, High): GPU stall due to ReadPixels", source: http://127.0.0.1:35404/x (0)')
    broken = ('[1:1:1203/060000.000001:INFO:CONSOLE(0)] "Failed to load resource: the server responded with a status '
              'of 404 (Not Found)", source: http://127.0.0.1:8000/a.glb (0)')
    uncaught = '[1:1:1203/060000.000001:INFO:CONSOLE(12)] "Uncaught TypeError: x is undefined", source: viewer.js (12)'
    not_console = "[1:1:1203/064040.404040:ERROR:gpu_init.cc(1)] 404 Uncaught"
    assert console_errors("\n".join([benign, broken, uncaught, not_console])) == [broken, uncaught]


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
