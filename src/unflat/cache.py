"""unflat's one cache directory: estimated depth, distillation targets, backbones trained on the fly, FID
reference statistics (each in its own sub-folder).

``$UNFLAT_CACHE_DIR``, else ``$UNFLAT_CACHE`` (the name the depth cache used first), else
``$XDG_CACHE_HOME/unflat``, else ``~/.cache/unflat``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    for name in ("UNFLAT_CACHE_DIR", "UNFLAT_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "unflat"
