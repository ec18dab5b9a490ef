"""The local web viewer's HTTP server (standard library only).

It serves files under one folder and nothing else:
- a URL path is percent-decoded once, then refused (403) when it holds ``..``, a backslash, a NUL
  or an absolute path, and again when the file it resolves to (symlinks followed) lies outside
  the folder; missing files are 404;
- it binds 127.0.0.1 unless told otherwise, and answers only requests whose ``Host`` header names
  the bound address or localhost (so a web page cannot reach it through DNS rebinding);
- pages carry a Content-Security-Policy that allows scripts from the server itself only.

Routes: ``/`` and ``/<folder>/`` (index pages), ``/<file>`` (a file under the root),
``/_unflat/static/<name>`` (the viewer's own JS/CSS), ``/_unflat/mesh?file=<path>`` (3D page),
``/api/sample?seed=<int>&class=<int>`` (PNG from a ``ViewerBackend``, when one is attached).
"""

from __future__ import annotations

import mimetypes
import shutil
import sys
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from unflat.export.viewer import pages

STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
NOT_SERVED_SUFFIXES = {".pt", ".pth", ".ckpt", ".safetensors"}  # weights, wherever they lie
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self'; connect-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
EXTRA_TYPES = {
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".js": "text/javascript",
    ".jsonl": "text/plain; charset=utf-8",
    ".yaml": "text/plain; charset=utf-8",
    ".obj": "text/plain; charset=utf-8",
    ".mtl": "text/plain; charset=utf-8",
}


@runtime_checkable
class ViewerBackend(Protocol):
    """Renders samples on demand for the viewer's seed/class picker (e.g. a trained generator)."""

    def sample(self, seed: int, class_id: int | None) -> bytes:
        """PNG-encoded image of the sample for ``seed`` (and class ``class_id``, None = any)."""
        ...


class Refused(Exception):
    """A request the server answers with an error status instead of content."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class ViewerServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one root folder and, optionally, a sampling backend."""

    daemon_threads = True

    def __init__(
        self, root: Path, host: str, port: int, backend: ViewerBackend | None = None, quiet: bool = False
    ) -> None:
        self.root = root.resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"viewer root {root} is not a folder")
        self.backend = backend
        self.quiet = quiet
        self.backend_lock = threading.Lock()  # models are not safe to call from several threads
        super().__init__((host, port), ViewerHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


def make_server(
    root: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: ViewerBackend | None = None,
    quiet: bool = False,
) -> ViewerServer:
    """A bound, not yet running server (``port=0`` picks a free port); run it with
    ``serve_forever()``, e.g. in a thread, and stop it with ``shutdown()``."""
    return ViewerServer(Path(root), host, port, backend, quiet)


def serve(
    root: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    open_browser: bool = False,
    backend: ViewerBackend | None = None,
) -> None:
    """Serve ``root`` until Ctrl-C, printing the URL (and opening it in a browser if asked)."""
    server = make_server(root, host, port, backend)
    if host not in LOOPBACK_HOSTS:
        print(f"warning: serving {server.root} to the network on {host}; anyone who can reach it can read it",
              file=sys.stderr)
    print(f"unflat viewer: {server.url} (serving {server.root}; Ctrl-C to stop)")
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def resolve_under_root(root: Path, url_path: str) -> Path:
    """The existing file or folder that ``url_path`` (still percent-encoded) names under ``root``.

    Raises Refused(403) for traversal attempts and paths that resolve outside ``root`` (symlinks
    included), Refused(404) when nothing exists there.
    """
    decoded = unquote(url_path)
    if "\x00" in decoded or "\\" in decoded:
        raise Refused(HTTPStatus.FORBIDDEN, "forbidden path")
    if not decoded.startswith("/"):
        raise Refused(HTTPStatus.FORBIDDEN, "forbidden path")
    rel = decoded[1:]
    if rel.startswith("/"):
        raise Refused(HTTPStatus.FORBIDDEN, "absolute paths are not served")
    parts = rel.split("/")
    if any(part in ("..", ".") for part in parts):
        raise Refused(HTTPStatus.FORBIDDEN, "path traversal is not allowed")
    # what the pages never list is not served either: dotfiles, checkpoints (weights are not for the network)
    if any(part.startswith(".") or part in pages.SKIPPED_FOLDERS for part in parts) or \
            Path(rel).suffix.lower() in NOT_SERVED_SUFFIXES:
        raise Refused(HTTPStatus.NOT_FOUND, "not found")
    candidate = root / rel
    try:
        if not candidate.exists():  # follows symlinks: a dangling link is missing too
            raise Refused(HTTPStatus.NOT_FOUND, "not found")
        resolved = candidate.resolve()
    except OSError:  # a name over 255 bytes (ENAMETOOLONG), a loop of links ...
        raise Refused(HTTPStatus.NOT_FOUND, "not found") from None
    if resolved != root and not resolved.is_relative_to(root):
        raise Refused(HTTPStatus.FORBIDDEN, "outside the served folder")
    if not (resolved.is_dir() or resolved.is_file()):  # a FIFO or device: reading it would hang the request
        raise Refused(HTTPStatus.NOT_FOUND, "not a regular file")
    return resolved


class ViewerHandler(BaseHTTPRequestHandler):
    server: ViewerServer
    server_version = "unflat-viewer"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(send_body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if not self.server.quiet:
            super().log_message(format, *args)

    # ---- routing ------------------------------------------------------------------------------
    def _respond(self, send_body: bool) -> None:
        try:
            self._check_host()
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path.startswith("/_unflat/static/"):
                self._send_static(url.path.removeprefix("/_unflat/static/"), send_body)
            elif url.path == pages.MESH_PAGE_URL:
                self._send_mesh_page(query, send_body)
            elif url.path == "/api/sample":
                self._send_sample(query, send_body)
            else:
                target = resolve_under_root(self.server.root, url.path)
                if target.is_dir():
                    if not url.path.endswith("/"):
                        self._redirect(url.path + "/")
                        return
                    page = pages.index_page(self.server.root, target, self.server.backend is not None)
                    self._send_bytes(page.encode(), "text/html; charset=utf-8", send_body)
                else:
                    self._send_file(target, send_body)
        except Refused as refusal:
            body = pages.error_page(refusal.status.value, str(refusal)).encode()
            self._send_bytes(body, "text/html; charset=utf-8", send_body, refusal.status)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _check_host(self) -> None:
        host = self.server.server_address[0]
        if host in ("0.0.0.0", "::"):
            return  # the user chose to serve every interface and name
        header = self.headers.get("Host", "")
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        name = name.strip("[]").lower()
        if name not in LOOPBACK_HOSTS | {host.lower()}:
            raise Refused(HTTPStatus.FORBIDDEN, "unexpected Host header")

    # ---- responses ----------------------------------------------------------------------------
    def _send_static(self, name: str, send_body: bool) -> None:
        # Only the files shipped in static/ by name: no sub-paths, nothing decoded.
        allowed = {p.name for p in STATIC_DIR.iterdir() if p.is_file()}
        if name not in allowed:
            raise Refused(HTTPStatus.NOT_FOUND, "not found")
        self._send_file(STATIC_DIR / name, send_body, cache=True)

    def _send_mesh_page(self, query: dict[str, list[str]], send_body: bool) -> None:
        rel = query.get("file", [""])[0]
        # parse_qs already decoded the value once; re-quote so it is decoded exactly once.
        target = resolve_under_root(self.server.root, "/" + quote(rel))
        if not target.is_file() or target.suffix.lower() not in pages.VIEWABLE_MESH_SUFFIXES:
            raise Refused(HTTPStatus.NOT_FOUND, "no such GLB/glTF file")
        rel = target.relative_to(self.server.root).as_posix()
        listing = pages.scan_folder(self.server.root, target.parent)
        page = pages.mesh_page(rel, listing.meshes)
        self._send_bytes(page.encode(), "text/html; charset=utf-8", send_body)

    def _send_sample(self, query: dict[str, list[str]], send_body: bool) -> None:
        if self.server.backend is None:
            raise Refused(HTTPStatus.NOT_FOUND, "no sampling backend attached to this viewer")
        try:
            seed = int(query.get("seed", ["0"])[0])
            raw_class = query.get("class", [""])[0]
            class_id = int(raw_class) if raw_class not in ("", "any") else None
        except ValueError:
            raise Refused(HTTPStatus.BAD_REQUEST, "seed and class must be integers") from None
        if seed < 0 or (class_id is not None and class_id < 0):
            raise Refused(HTTPStatus.BAD_REQUEST, "seed and class must be non-negative")
        with self.server.backend_lock:
            try:
                png = self.server.backend.sample(seed, class_id)
            except (ValueError, IndexError) as error:
                raise Refused(HTTPStatus.BAD_REQUEST, str(error)) from None
        self._send_bytes(png, "image/png", send_body)

    def _send_file(self, path: Path, send_body: bool, cache: bool = False) -> None:
        content_type = EXTRA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
        try:
            handle = open(path, "rb")
        except OSError:
            raise Refused(HTTPStatus.NOT_FOUND, "not readable") from None
        with handle:
            size = path.stat().st_size
            self._send_headers(HTTPStatus.OK, content_type or "application/octet-stream", size, cache)
            if send_body:
                shutil.copyfileobj(handle, self.wfile)

    def _send_bytes(
        self, body: bytes, content_type: str, send_body: bool, status: HTTPStatus = HTTPStatus.OK
    ) -> None:
        self._send_headers(status, content_type, len(body), cache=False)
        if send_body:
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_headers(self, status: HTTPStatus, content_type: str, length: int, cache: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        # Run folders change while training runs: never cache them; the static files are fixed.
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-cache")
        self.end_headers()
