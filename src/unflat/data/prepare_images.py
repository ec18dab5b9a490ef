"""In-the-wild photo folders: discovery (ImageNet-style class sub-folders) and mask pairing."""

from __future__ import annotations

from pathlib import Path

from unflat.data.image_files import IMAGE_SUFFIXES, SkipReport


def find_image_files(src: Path, report: SkipReport) -> tuple[list[tuple[Path, str]], list[str]]:
    """Every candidate file under ``src`` with its class name, and the class names.

    Classes are the first-level sub-folders of ``src`` (ImageNet style); files directly in ``src``
    belong to the class ``src.name`` (a folder without sub-folders is one class). Every
    non-hidden file is a candidate, whatever its suffix, so non-images are counted as skipped
    rather than silently ignored. Class folders with no files are reported; classes with no usable
    image are dropped later by the caller.
    """
    src = Path(src)
    items = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .DS_Store, .git, editor swap files
        items.append((path, rel.parts[0] if len(rel.parts) > 1 else src.name))
    for folder in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not any(c == folder.name for _, c in items):
            report.add("empty class folder", folder.name + "/")
    classes = sorted({c for _, c in items})
    return items, classes


def find_mask(image: Path, src: Path, masks: Path) -> Path | None:
    """The mask for ``image``: same relative path under ``masks``, any image suffix (e.g. a.jpg -> a.png)."""
    rel = Path(image).relative_to(src)
    exact = masks / rel
    if exact.is_file():
        return exact
    for suffix in sorted(IMAGE_SUFFIXES):
        for candidate in (masks / rel.with_suffix(suffix), masks / rel.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    return None
