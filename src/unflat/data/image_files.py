"""Robust decoding of user image files: never crash on bad input, say why a file was skipped.

Every loader returns either the decoded array or a ``SkipReason``. Handled: zero-byte and
non-image files, truncated/corrupt files, CMYK, 16-bit and float images, grayscale, palette and
alpha images (alpha composited over white), EXIF orientation, tiny images (skipped) and huge
ones (decoded at reduced size through JPEG draft mode when possible, else skipped, never decoded
at full size: no decompression bombs). Used by ``unflat dataset images``, ``invert`` and
``reconstruct``.
"""

from __future__ import annotations

import struct
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unflat.errors import UserError

Crop = Literal["center", "pad", "stretch"]
"""How a non-square image becomes square: "center" crops the middle square, "pad" pads the short
side with the background colour (keeps everything), "stretch" resizes without keeping the aspect."""

MIN_SIDE = 16
"""Images whose shorter side is below this many pixels are skipped as too small."""

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif"}


@dataclass(frozen=True)
class SkipReason:
    """Why a file was not used: a short reason (the report's key) plus detail for this file."""

    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


EMPTY = "empty file"
NOT_IMAGE = "not an image"
CORRUPT = "truncated or corrupt"
TOO_SMALL = "too small"
TOO_LARGE = "too large to decode safely"
UNREADABLE = "unreadable"


@dataclass
class LoadedImage:
    """rgb: uint8 [R,R,3] (alpha composited over ``background``); alpha: uint8 [R,R] or None."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    original_size: tuple[int, int]


def load_image(
    path: Path | str,
    resolution: int,
    crop: Crop = "center",
    background: tuple[int, int, int] = (255, 255, 255),
    min_side: int = MIN_SIDE,
    max_pixels: int | None = None,
) -> LoadedImage | SkipReason:
    """Decode ``path`` to a square ``resolution`` x ``resolution`` image, or say why not.

    max_pixels: images with more pixels are decoded at reduced size with JPEG draft mode, or
        skipped when the format cannot decode at reduced size. Default: PIL's ``MAX_IMAGE_PIXELS``.
    """
    path = Path(path)
    limit = max_pixels if max_pixels is not None else (Image.MAX_IMAGE_PIXELS or 178_956_970)
    try:
        if path.stat().st_size == 0:
            return SkipReason(EMPTY)
    except OSError as exc:
        return SkipReason(UNREADABLE, exc.strerror or str(exc))
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below; PIL's warning is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if min(width, height) < min_side:
                    return SkipReason(TOO_SMALL, f"{width}x{height} < {min_side}px")
                if width * height > limit:
                    if image.format != "JPEG":
                        return SkipReason(TOO_LARGE, f"{width}x{height} {image.format} exceeds {limit} pixels")
                    # Decode at 1/2, 1/4 or 1/8 scale straight from the JPEG stream (draft picks the
                    # smallest scale that still covers the requested size).
                    k = next((k for k in (2, 4, 8) if (width / k) * (height / k) <= limit), 8)
                    image.draft(image.mode, (-(-width // k), -(-height // k)))
                    if image.size[0] * image.size[1] > limit:
                        return SkipReason(TOO_LARGE, f"{width}x{height} JPEG exceeds {limit} pixels even at 1/8 scale")
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb, alpha = _to_rgb_alpha(image, background)
    except Image.DecompressionBombError as exc:
        return SkipReason(TOO_LARGE, str(exc).split(".")[0])
    except UnidentifiedImageError:
        if path.suffix.lower() in IMAGE_SUFFIXES:  # named like an image but unreadable: damaged
            return SkipReason(CORRUPT, "image format not recognised")
        return SkipReason(NOT_IMAGE, "no image format recognised")
    # RuntimeError: AVIF frames that fail to decode; NotImplementedError (one) for DDS pixel formats Pillow lacks
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, RuntimeError) as exc:
        return SkipReason(CORRUPT, str(exc)[:120] or type(exc).__name__)
    except MemoryError:
        return SkipReason(TOO_LARGE, "out of memory while decoding")
    rgb_square = _square_resize(rgb, resolution, crop, background)
    alpha_square = None if alpha is None else _square_resize(alpha, resolution, crop, (0,))
    return LoadedImage(np.asarray(rgb_square, np.uint8), None if alpha_square is None else np.asarray(alpha_square, np.uint8), (width, height))


def load_image_rgb(path: Path | str, resolution: int, crop: Crop = "center") -> np.ndarray | SkipReason:
    """Decode ``path`` to uint8 [R,R,3] RGB (see ``load_image``), or a ``SkipReason``."""
    loaded = load_image(path, resolution, crop)
    return loaded if isinstance(loaded, SkipReason) else loaded.rgb


def load_mask(path: Path | str, resolution: int, crop: Crop = "center") -> np.ndarray | SkipReason:
    """Decode a mask file to uint8 [R,R] (0 = background, 255 = object).

    Grayscale/RGB masks use their luminance; masks with a real alpha channel use the alpha.
    """
    loaded = load_image(path, resolution, crop, background=(0, 0, 0))
    if isinstance(loaded, SkipReason):
        return loaded
    if loaded.alpha is not None and loaded.alpha.min() < 255:
        return loaded.alpha
    return np.asarray(Image.fromarray(loaded.rgb).convert("L"))


# ---- image paths from the command line ------------------------------------------------------
def expand_image_paths(paths: list[Path] | tuple[Path, ...]) -> list[Path]:
    """Files as given, folders replaced by their image files (``IMAGE_SUFFIXES``, sorted).

    Raises UserError naming the path: a folder that holds no images, a path that does not exist, or
    no paths at all. Used by ``unflat invert`` and ``unflat reconstruct``.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise UserError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such image file or folder")
    if not files:
        raise UserError("no images given")
    return files


def readable_image_paths(paths: list[Path] | tuple[Path, ...]) -> list[Path]:
    """``expand_image_paths``, then each file checked to decode: a UserError naming the first file that is
    missing, empty, not an image or corrupt, before any work starts."""
    files = expand_image_paths(paths)
    for path in files:
        loaded = load_image(path, 16, min_side=1)
        if isinstance(loaded, SkipReason):
            raise UserError(f"cannot read image {path}: {loaded}")
    return files


def unique_stems(files: list[Path]) -> list[str]:
    """Output names for input files: each file's stem, ``-1``, ``-2``, ... appended to repeats (a/x.png, b/x.png
    -> x, x-1)."""
    seen: dict[str, int] = {}
    names = []
    for path in files:
        stem = path.stem
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(stem if count == 0 else f"{stem}-{count}")
    return names


def padded_content_box(original_size: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the real pixels of an image of ``original_size`` (width, height) decoded with
    ``crop="pad"`` into a ``side`` square: where ``_square_resize`` pastes it, scaled."""
    width, height = original_size
    scale = side / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    top, left = (side - h) // 2, (side - w) // 2
    return top, left, top + h, left + w


# ---- decoding helpers ------------------------------------------------------------------------
def _to_rgb_alpha(image: Image.Image, background: tuple[int, ...]) -> tuple[Image.Image, Image.Image | None]:
    """Any PIL mode -> (8-bit RGB composited over ``background``, 8-bit alpha or None)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit grayscale: scale to 8 bits instead of clipping (PIL's convert clips).
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max() > 255 else (1.0 if mode == "F" and values.max() <= 1 else 255.0)
        gray = np.clip(np.rint(values / top * 255), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB"), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        alpha = rgba.getchannel("A")
        canvas = Image.new("RGBA", rgba.size, (*background[:3], 255) if len(background) >= 3 else (background[0],) * 3 + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB"), alpha
    if mode == "CMYK":
        return image.convert("RGB"), None  # PIL's CMYK->RGB; ICC-exact conversion is out of scope
    return image.convert("RGB"), None


def _square_resize(image: Image.Image, resolution: int, crop: Crop, fill: tuple[int, ...]) -> Image.Image:
    width, height = image.size
    if crop == "center":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    elif crop == "pad":
        side = max(width, height)
        colour = fill[0] if image.mode == "L" else tuple(fill[:3]) if len(fill) >= 3 else (fill[0],) * 3
        canvas = Image.new(image.mode, (side, side), colour)
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        image = canvas
    elif crop != "stretch":
        raise ValueError(f"crop must be 'center', 'pad' or 'stretch', got {crop!r}")
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


# ---- reporting -------------------------------------------------------------------------------
@dataclass
class SkipReport:
    """Counts skipped inputs by reason, keeping a few example file names for each."""

    examples_per_reason: int = 3
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: list[str] = field(default_factory=list)

    def add(self, reason: SkipReason | str, name: str | Path) -> None:
        key = reason.reason if isinstance(reason, SkipReason) else str(reason)
        self.counts[key] += 1
        if len(self.examples[key]) < self.examples_per_reason:
            detail = f" ({reason.detail})" if isinstance(reason, SkipReason) and reason.detail else ""
            self.examples[key].append(f"{name}{detail}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def table(self, title: str = "Skipped inputs") -> "object":
        """A rich Table: reason | count | examples."""
        from rich.table import Table  # noqa: PLC0415

        table = Table(title=title)
        table.add_column("reason")
        table.add_column("count", justify="right")
        table.add_column("examples")
        for reason, count in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            table.add_row(reason, str(count), "\n".join(self.examples[reason]))
        return table
