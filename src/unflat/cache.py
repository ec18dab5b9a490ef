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


# ---------------------------------------------------------------------------------------------
# Content keys: what a cache entry depends on is the bytes on disk, never what a manifest says they are
# ---------------------------------------------------------------------------------------------
TRUST_AFTER_NS = 2_000_000_000  # a memo is trusted only for files last changed this long before they were hashed


def file_digest(path: Path | str, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes, memoised under ``cache_root()/file-digests`` by (real path, device, inode,
    size, mtime_ns, ctime_ns).

    Any write sets both mtime and ctime to the time of the write, so the memo can only miss a write that
    leaves both where they were: one that lands in the same clock tick as both old values. The memo is
    therefore kept only when mtime or ctime was at least ``TRUST_AFTER_NS`` older than the moment hashing began
    (git's "racily clean" rule); a file changed just before it was hashed is hashed again every time, which is
    always correct. Setting mtime back by hand (touch -r) still changes ctime, which the kernel alone sets.
    """
    import hashlib
    import json
    import time

    path = Path(path)
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
    memo = cache_root() / "file-digests" / (hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json")
    try:
        entry = json.loads(memo.read_text())
        if entry.get("path") == real and entry.get("stat") == key and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    started = time.time_ns()
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    sha = digest.hexdigest()
    after = os.stat(real)
    unchanged = [after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns] == key
    if unchanged and min(stat.st_mtime_ns, stat.st_ctime_ns) < started - TRUST_AFTER_NS:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f"{memo.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps({"path": real, "stat": key, "sha256": sha}))
            os.replace(tmp, memo)
        except OSError:  # a read-only cache: hash again next time
            pass
    return sha


def files_digest(root: Path | str, names: tuple[str, ...]) -> str:
    """One key for the named files of a folder (a missing file counts as missing)."""
    import hashlib

    parts = []
    for name in names:
        path = Path(root) / name
        parts.append(f"{name}={file_digest(path) if path.is_file() else 'missing'}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
