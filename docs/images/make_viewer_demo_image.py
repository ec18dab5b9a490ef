"""docs/images/viewer-demo-index.png: the viewer's first screen on an `unflat demo` folder, in headless Chromium.

    unflat demo --full --out runs/demo                # (or a shorter one: --max-steps 500)
    python docs/images/make_viewer_demo_image.py runs/demo

The page is served the way `unflat view runs/demo` serves it (with the sampler of runs/demo/run) and shot at
1280x800: what a user sees above the fold.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from unflat.export.viewer import make_server
from unflat.export.viewer.cli import load_backend

DOCS = Path(__file__).resolve().parent


def main(folder: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium not found (Debian: apt-get install chromium)")
    server = make_server(folder, port=0, quiet=True, backend=load_backend(folder, "cpu"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                        "--enable-unsafe-swiftshader", "--hide-scrollbars", f"--user-data-dir={profile}",
                        "--window-size=1280,800", "--virtual-time-budget=10000",
                        f"--screenshot={DOCS / 'viewer-demo-index.png'}", server.url],
                       check=True, capture_output=True, timeout=120)
    server.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/demo"))
