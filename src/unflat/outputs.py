"""What unflat may write into and what it may replace: never a folder or file it did not write.

Rules (docs/reliability.md, "Overwrite and output folders"):

- A command that replaces a folder (``dataset ... --overwrite``) replaces only what unflat wrote: an
  unflat dataset (its manifest says so) or an empty folder; never the current folder, the home folder, the
  root, or a folder above one of them.
- A command that writes files into a folder (``generate``, ``export``, ``invert``, ``reconstruct``) writes
  only into a new or empty folder, or one that carries the marker ``.unflat-output`` it left there before;
  so a file of the user's with the same name as an output is never overwritten.
- Half-written output (``DIR.partial``) is removed only when it carries the marker its writer left.

Everything here raises :class:`UserError` with one line: which folder, why unflat refuses, how to fix it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from unflat import __version__
from unflat.errors import UserError

OUTPUT_MARKER = ".unflat-output"
PARTIAL_MARKER = ".unflat-partial"


def protected_reason(path: Path) -> str | None:
    """Why ``path`` must never be replaced as a whole (None when it may be): the root, the home folder, the
    current folder, or a folder above either."""
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):
        return None
    if resolved == Path(resolved.anchor):
        return "it is the root of the file system"
    for name, place in (("your home folder", Path.home()), ("the current folder", Path.cwd())):
        try:
            place = place.resolve()
        except (OSError, RuntimeError):  # pragma: no cover - a deleted cwd
            continue
        if resolved == place:
            return f"it is {name}"
        if resolved in place.parents:
            return f"it holds {name}"
    return None


def refuse_file(path: Path, flag: str = "--out") -> None:
    """A one-line error if ``path`` exists and is not a folder."""
    if Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"{path}: exists and is a file, not a folder; choose a new {flag} (unflat will not replace it)")


def check_output_dir(path: Path, flag: str = "--out") -> None:
    """Refuse (one line) to write into ``path`` unless it is absent, empty, or a folder unflat wrote before."""
    path = Path(path)
    refuse_file(path, flag)
    if not path.is_dir():
        return
    try:
        entries = [p.name for p in path.iterdir()]
    except OSError as exc:
        raise UserError(f"{path}: cannot read this folder ({exc.strerror or exc}); choose another {flag}") from None
    if entries and OUTPUT_MARKER not in entries:
        raise UserError(
            f"{path}: folder is not empty and was not written by unflat (no {OUTPUT_MARKER} in it), so writing there "
            f"could replace your files; choose a new {flag} or empty the folder yourself"
        )


def claim_output_dir(path: Path, command: str, flag: str = "--out") -> Path:
    """``check_output_dir``, then create ``path`` and leave the marker that lets a later run write there again."""
    path = Path(path)
    check_output_dir(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
        marker = path / OUTPUT_MARKER
        if not marker.exists():
            marker.write_text(json.dumps({"written_by": f"unflat {command}", "unflat_version": __version__}) + "\n")
    except OSError as exc:
        raise UserError(f"{path}: cannot write output here ({exc.strerror or exc}); choose another {flag}") from None
    return path


def remove_partial(partial: Path) -> None:
    """Remove a half-written ``DIR.partial`` left by an earlier unflat writer; refuse if unflat did not make it."""
    import shutil

    partial = Path(partial)
    if not os.path.lexists(partial):
        return
    if partial.is_symlink() or not partial.is_dir():
        raise UserError(f"{partial}: unflat writes a new dataset here first, but this path exists and is not a "
                        "folder unflat made; move it away or choose another --out")
    entries = [p.name for p in partial.iterdir()]
    if entries and PARTIAL_MARKER not in entries:
        raise UserError(f"{partial}: unflat writes a new dataset here first, but this folder was not made by unflat "
                        f"(no {PARTIAL_MARKER}) and may hold your files; move it away or choose another --out")
    shutil.rmtree(partial)


def check_replaceable_file(path: Path, ours: Callable[[Path], bool], what: str, flag: str = "--out") -> None:
    """Refuse (one line) to replace ``path`` unless it is absent or ``ours(path)`` says unflat wrote it."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; {flag} names the {what} file to write, e.g. {path / 'metrics.json'}")
    if path.exists() and not ours(path):
        raise UserError(f"{path}: exists and is not {what} written by unflat, so unflat will not replace it; "
                        f"choose another {flag} or move the file away")


def is_unflat_json(path: Path, *keys: str) -> bool:
    """A JSON object with every key in ``keys`` (how unflat recognises its own results files)."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(payload, dict) and all(key in payload for key in keys)


def starts_with(path: Path, prefix: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(len(prefix)) == prefix
    except OSError:
        return False
