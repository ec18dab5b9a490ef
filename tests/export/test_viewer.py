"""The viewer's server: it serves only the given folder, escapes names, binds to loopback."""

from __future__ import annotations

import http.client
import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unflat.export.viewer import ViewerBackend, make_server
from unflat.export.viewer.plots import read_metrics


EVIL_NAME = "<script>alert(1)<script>\" onload=\"x.png"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    (root / "samples").mkdir(parents=True)
    Image.new("RGB", (4, 4), (255, 0, 0)).save(root / "samples" / "step-00000010.png")
    (root / "samples" / EVIL_NAME).write_bytes((root / "samples" / "step-00000010.png").read_bytes())
    (root / "shape.glb").write_bytes(b"glTF")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "latest.pt").write_bytes(b"weights")
    rows = [{"step": 10 * i, "time": 1000.0 + i, "loss/G": 1.0 / (i + 1), "event": "x"} for i in range(5)]
    (root / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken")
    (tmp_path / "secret.txt").write_text("outside")
    return root


class Server:
    def __init__(self, root: Path, backend: ViewerBackend | None = None) -> None:
        self.httpd = make_server(root, port=0, backend=backend, quiet=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.port = self.httpd.server_address[1]

    def get(self, raw_path: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """GET with the path sent byte for byte (no client-side normalisation of '..')."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.putrequest("GET", raw_path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{self.port}")
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, dict(response.getheaders()), body

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(run_dir: Path):
    running = Server(run_dir)
    yield running
    running.close()


def test_binds_loopback_by_default(run_dir):
    httpd = make_server(run_dir, port=0)
    try:
        assert httpd.server_address[0] == "127.0.0.1"
        assert httpd.url.startswith("http://127.0.0.1:")
    finally:
        httpd.server_close()


def test_serves_files_under_the_root(server, run_dir):
    status, headers, body = server.get("/samples/step-00000010.png")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == (run_dir / "samples" / "step-00000010.png").read_bytes()
    status, headers, _ = server.get("/shape.glb")
    assert status == 200 and headers["Content-Type"] == "model/gltf-binary"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert server.get("/missing.png")[0] == 404
    assert server.get("/samples")[0] == 301  # folders get their trailing slash


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/samples/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/samples/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/../../../../etc/passwd",
        "/_unflat/mesh?file=../secret.txt",
        "/_unflat/static/../server.py",
    ],
)
def test_traversal_is_refused(server, path):
    status, _, body = server.get(path)
    assert status in (403, 404)
    assert b"outside" not in body and b"root:" not in body


def test_symlink_out_of_the_root_is_refused(server, run_dir, tmp_path):
    os.symlink(tmp_path / "secret.txt", run_dir / "link.txt")
    os.symlink(tmp_path, run_dir / "linkdir")
    assert server.get("/link.txt")[0] == 403
    assert server.get("/linkdir/secret.txt")[0] == 403
    os.symlink(run_dir / "shape.glb", run_dir / "inside.glb")  # links that stay inside are fine
    assert server.get("/inside.glb")[0] == 200


def test_foreign_host_header_is_refused(server):
    assert server.get("/", host="evil.example:80")[0] == 403
    assert server.get("/", host=f"localhost:{server.port}")[0] == 200


def test_index_lists_and_escapes(server):
    status, headers, body = server.get("/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<script>alert(1)" not in page and '" onload="' not in page
    assert page.count("&lt;script&gt;alert(1)&lt;script&gt;&quot; onload=&quot;x.png") == 2  # alt and caption
    assert "/samples/%3Cscript%3Ealert%281%29%3Cscript%3E%22%20onload%3D%22x.png" in page  # URL
    assert "step-00000010.png" in page
    assert "/_unflat/mesh?file=shape.glb" in page
    assert "latest.pt" not in page  # checkpoints are not listed
    assert 'aria-label="loss/G"' in page and 'aria-label="time"' not in page
    assert "<script" not in page  # no inline or sampler scripts without a backend


def test_mesh_page_and_static_files(server):
    status, _, body = server.get("/_unflat/mesh?file=shape.glb")
    assert status == 200 and b'data-mesh="/shape.glb"' in body and b"mesh-viewer.js" in body
    for name in ("three.module.min.js", "GLTFLoader.js", "OrbitControls.js", "BufferGeometryUtils.js",
                 "mesh-viewer.js", "style.css"):
        status, headers, body = server.get(f"/_unflat/static/{name}")
        assert status == 200 and len(body) > 100, name
    assert headers["Content-Type"].startswith("text/css")
    _, headers, body = server.get("/_unflat/static/GLTFLoader.js")
    assert headers["Content-Type"] == "text/javascript"
    assert b"from 'three'" not in body  # vendored files import each other by relative path
    assert server.get("/_unflat/mesh?file=samples/step-00000010.png")[0] == 404


def test_sample_api(run_dir):
    class ColourBackend:
        """A real (if tiny) backend: the image colour encodes seed and class."""

        def sample(self, seed: int, class_id: int | None) -> bytes:
            if class_id is not None and class_id >= 3:
                raise ValueError("class_id must be < 3")
            buffer = io.BytesIO()
            Image.new("RGB", (8, 8), (seed % 256, 0 if class_id is None else 50 * (class_id + 1), 7)).save(buffer, "PNG")
            return buffer.getvalue()

    assert isinstance(ColourBackend(), ViewerBackend)
    running = Server(run_dir, ColourBackend())
    try:
        status, headers, body = running.get("/api/sample?seed=42&class=1")
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert np.asarray(Image.open(io.BytesIO(body)))[0, 0].tolist() == [42, 100, 7]
        assert np.asarray(Image.open(io.BytesIO(running.get("/api/sample?seed=3")[2])))[0, 0].tolist() == [3, 0, 7]
        assert running.get("/api/sample?seed=abc")[0] == 400
        assert running.get("/api/sample?seed=-1")[0] == 400
        assert running.get("/api/sample?seed=1&class=5")[0] == 400
        assert b"sampler.js" in running.get("/")[2]
    finally:
        running.close()
    no_backend = Server(run_dir)
    try:
        assert no_backend.get("/api/sample?seed=1")[0] == 404
    finally:
        no_backend.close()


def test_read_metrics_skips_broken_lines_and_non_numbers(run_dir):
    series = read_metrics(run_dir / "metrics.jsonl")
    assert list(series) == ["loss/G"]
    assert series["loss/G"][2] == (20.0, pytest.approx(1 / 3))


def test_method_backend_renders_image_mask_and_depth_side_by_side():
    import torch

    from unflat.export.viewer.backend import MethodSampleBackend
    from unflat.methods.base import Samples

    class ConstantMethod:
        """Stands in for a trained generator: the image value encodes the seed."""

        def sample(self, n: int, seed: int, class_ids=None) -> Samples:
            value = -1 + 2 * (seed % 10) / 10 + (0 if class_ids is None else 0.1 * class_ids.item())
            depth = torch.zeros(n, 1, 6, 6)
            depth[..., 2:4, 2:4] = 2.0
            return Samples(images=torch.full((n, 3, 6, 6), value), masks=(depth > 0).float(), depth=depth)

    backend = MethodSampleBackend(ConstantMethod(), num_classes=3)
    image = np.asarray(Image.open(io.BytesIO(backend.sample(5, None))))
    assert image.shape == (6 + 4, 3 * 6 + 4 * 2, 3)  # three tiles, padding 2
    assert image[2, 2].tolist() == [128, 128, 128]  # seed 5 -> value 0 in [-1,1]
    assert image[4, 2 + 8 + 2].tolist() == [255] * 3 and image[2, 2 + 8].tolist() == [0] * 3  # mask tile
    assert image[4, 2 + 16 + 2].tolist() == [255] * 3  # depth tile: nearest is bright
    assert np.asarray(Image.open(io.BytesIO(backend.sample(5, 2))))[2, 2, 0] == 153
    with pytest.raises(ValueError, match="class must be < 3"):
        backend.sample(0, 3)
    with pytest.raises(ValueError, match="unconditional"):
        MethodSampleBackend(ConstantMethod()).sample(0, 1)


def test_view_cli_help_and_missing_folder(tmp_path, capsys):
    from unflat.export.viewer.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--port" in capsys.readouterr().out
    with pytest.raises(Exception, match="not a folder"):
        main([str(tmp_path / "nope")])


def test_index_leads_with_results_and_folds_internals(tmp_path):
    """`unflat view runs/demo`: images and meshes first, newest sample grid first, labelled curves after them,
    timings folded away, ground-truth PLY files collapsed; the sampler comes from the run below the folder."""
    from unflat.export.viewer.cli import find_run
    from unflat.export.viewer.pages import index_page

    root = tmp_path / "demo"
    (root / "run" / "samples").mkdir(parents=True)
    (root / "run" / "checkpoints").mkdir()
    (root / "run" / "checkpoints" / "latest.pt").write_bytes(b"weights")
    for step in (100, 200, 1500):
        Image.new("RGB", (4, 4)).save(root / "run" / "samples" / f"step-{step:08d}.png")
    Image.new("RGB", (4, 4)).save(root / "turntable.gif")
    (root / "samples").mkdir()
    for i in range(16):
        Image.new("RGB", (4, 4)).save(root / "samples" / f"render_{i:04d}.png")
    Image.new("RGB", (4, 4)).save(root / "samples" / "renders.png")
    (root / "meshes").mkdir()
    (root / "meshes" / "mesh_0000.glb").write_bytes(b"glTF")
    (root / "data" / "meshes").mkdir(parents=True)
    for i in range(300):
        (root / "data" / "meshes" / f"{i:06d}.ply").write_bytes(b"ply")
    rows = [{"step": i, "loss_D": 1.0 / (i + 1), "opengl_draw_ms": 2.0, "images_per_s": 9.0} for i in range(3)]
    (root / "run" / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    page = index_page(root, root, with_sampler=True)
    order = [page.index(s) for s in ("turntable.gif", "samples/renders.png", "16 per-sample images",
                                     "samples/render_0000.png", "step 1500", "step 200", "mesh_0000.glb", 'id="sampler"',
                                     'aria-label="loss_D"', "timings and counters (2 curves)", "300 OBJ/PLY/STL files")]
    assert order == sorted(order)
    assert "discriminator loss" in page and ">step</text>" in page  # a meaning and an axis name per curve
    details = page.index("<details><summary>timings and counters")
    assert page.index('aria-label="opengl_draw_ms"') > details and page.index("000000.ply") > page.index("300 OBJ/PLY/STL")
    assert find_run(root) == root / "run" and find_run(root / "data") is None
