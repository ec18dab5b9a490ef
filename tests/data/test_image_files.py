"""The bad-input zoo: every kind of broken or unusual image is decoded or skipped, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unflat.data.commands import ImagesConfig, run_images
from unflat.data.format import open_dataset
from unflat.data.image_files import (
    CORRUPT,
    EMPTY,
    NOT_IMAGE,
    TOO_LARGE,
    TOO_SMALL,
    SkipReason,
    load_image,
    load_image_rgb,
    load_mask,
)

R = 32


def _gradient(w: int = 48, h: int = 40) -> np.ndarray:
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)), np.full((h, w, 1), 90)], -1).astype(np.uint8)


def make_zoo(root: Path) -> dict[str, str]:
    """Writes one file per case under root/<class>/; returns name -> expected outcome ("ok" or a reason)."""
    good, odd = root / "good", root / "odd"
    good.mkdir(parents=True)
    odd.mkdir()
    (root / "empty_class").mkdir()
    expected = {}
    Image.fromarray(_gradient()).save(good / "rgb.jpg", quality=95)
    expected["good/rgb.jpg"] = "ok"
    Image.fromarray(_gradient()).save(good / "rgb.png")
    expected["good/rgb.png"] = "ok"
    Image.fromarray(_gradient()).convert("CMYK").save(odd / "cmyk.jpg")
    expected["odd/cmyk.jpg"] = "ok"
    Image.fromarray(_gradient()[..., 0]).save(odd / "gray.png")
    expected["odd/gray.png"] = "ok"
    sixteen = np.tile(np.linspace(0, 65535, 40).astype(np.uint16)[:, None], (1, 40))
    Image.fromarray(sixteen).save(odd / "gray16.png")  # mode I;16
    expected["odd/gray16.png"] = "ok"
    Image.fromarray(_gradient()).quantize(16).save(odd / "palette.png")
    expected["odd/palette.png"] = "ok"
    palette_t = Image.fromarray(_gradient()).quantize(16)
    palette_t.info["transparency"] = 0
    palette_t.save(odd / "palette_transparent.png", transparency=0)
    expected["odd/palette_transparent.png"] = "ok"
    rgba = np.concatenate([_gradient(), np.full((40, 48, 1), 255, np.uint8)], -1)
    rgba[:, :24, 3] = 0  # left half fully transparent
    Image.fromarray(rgba, "RGBA").save(odd / "alpha.png")
    expected["odd/alpha.png"] = "ok"
    Image.fromarray(_gradient()[..., :1].repeat(2, -1), "LA").save(odd / "gray_alpha.png")
    expected["odd/gray_alpha.png"] = "ok"
    # EXIF orientation 6: displayed rotated 90 degrees clockwise.
    sideways = np.zeros((30, 60, 3), np.uint8)
    sideways[:, :30] = (255, 0, 0)
    sideways[:, 30:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(sideways).save(odd / "exif_rotated.jpg", exif=exif.tobytes(), quality=95)
    expected["odd/exif_rotated.jpg"] = "ok"
    data = (good / "rgb.jpg").read_bytes()
    (odd / "truncated.jpg").write_bytes(data[: len(data) // 2])
    expected["odd/truncated.jpg"] = CORRUPT
    (odd / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    expected["odd/corrupt.png"] = CORRUPT
    Image.fromarray(_gradient(10, 10)).save(odd / "tiny.png")
    expected["odd/tiny.png"] = TOO_SMALL
    (odd / "notes.txt").write_text("not an image at all\n")
    expected["odd/notes.txt"] = NOT_IMAGE
    (odd / "zero.jpg").write_bytes(b"")
    expected["odd/zero.jpg"] = EMPTY
    (odd / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: ignored, not counted
    return expected


def test_zoo_each_file_decoded_or_skipped_with_reason(tmp_path: Path) -> None:
    expected = make_zoo(tmp_path)
    for name, outcome in expected.items():
        result = load_image(tmp_path / name, R)
        if outcome == "ok":
            assert not isinstance(result, SkipReason), (name, result)
            assert result.rgb.shape == (R, R, 3) and result.rgb.dtype == np.uint8
        else:
            assert isinstance(result, SkipReason) and result.reason == outcome, (name, result)


def test_conversions_are_correct(tmp_path: Path) -> None:
    make_zoo(tmp_path)
    # 16-bit grayscale is scaled, not clipped: the ramp covers the full 8-bit range.
    gray16 = load_image_rgb(tmp_path / "odd/gray16.png", R, crop="stretch")
    assert gray16[0, 0, 0] < 10 and gray16[-1, 0, 0] > 245 and 100 < gray16[R // 2, 0, 0] < 155
    # Alpha is composited over white and returned as alpha.
    alpha = load_image(tmp_path / "odd/alpha.png", R, crop="stretch")
    assert (alpha.rgb[:, :12] == 255).all() and alpha.alpha[:, :12].max() == 0 and alpha.alpha[:, -8:].min() == 255
    assert load_mask(tmp_path / "odd/alpha.png", R, crop="stretch")[:, :12].max() == 0
    # EXIF orientation applied: the left (red) half is now on top.
    rotated = load_image(tmp_path / "odd/exif_rotated.jpg", R, crop="stretch")
    assert rotated.original_size == (60, 30)
    assert rotated.rgb[2, R // 2, 0] > 200 and rotated.rgb[2, R // 2, 2] < 60
    assert rotated.rgb[-3, R // 2, 2] > 200 and rotated.rgb[-3, R // 2, 0] < 60
    # CMYK and grayscale come out as RGB close to the original.
    reference = load_image_rgb(tmp_path / "good/rgb.png", R).astype(int)
    assert np.abs(load_image_rgb(tmp_path / "odd/cmyk.jpg", R).astype(int) - reference).mean() < 12
    gray = load_image_rgb(tmp_path / "odd/gray.png", R)
    assert (gray[..., 0] == gray[..., 1]).all()


def test_huge_images_downscaled_with_draft_or_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = np.broadcast_to(_gradient(2, 2)[:1, :1], (1200, 1600, 3)).copy()
    Image.fromarray(big).save(tmp_path / "big.jpg")
    Image.fromarray(big).save(tmp_path / "big.png")
    jpeg = load_image(tmp_path / "big.jpg", R, max_pixels=400_000)
    assert not isinstance(jpeg, SkipReason) and jpeg.rgb.shape == (R, R, 3)
    png = load_image(tmp_path / "big.png", R, max_pixels=400_000)
    assert isinstance(png, SkipReason) and png.reason == TOO_LARGE
    # PIL's own decompression-bomb guard (raised inside Image.open) is turned into a skip as well.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    bomb = load_image(tmp_path / "big.png", R, max_pixels=10**9)
    assert isinstance(bomb, SkipReason) and bomb.reason == TOO_LARGE


def test_run_images_on_the_zoo_reports_and_never_crashes(tmp_path: Path) -> None:
    expected = make_zoo(tmp_path / "src")
    # --crop center: decoding alone (--crop object, the default, would also skip photos without an object)
    out = run_images(ImagesConfig(src=tmp_path / "src", out=tmp_path / "ds", resolution=R, workers=1, crop="center"))
    dataset = open_dataset(out, verify_hashes=True)
    ok = [n for n, o in expected.items() if o == "ok"]
    assert dataset.info.num_images == len(ok)
    assert dataset.info.class_names == ("good", "odd")  # the empty class folder is not a class
    assert np.bincount(dataset.labels).tolist() == [sum(n.startswith("good") for n in ok), sum(n.startswith("odd") for n in ok)]
    assert not dataset.info.has_masks and not dataset.info.has_depth
    assert bool(dataset.cameras.is_valid().all())
    skipped = json.loads((out / "manifest.json").read_text())["source"]["skipped"]
    reasons = [o for o in expected.values() if o != "ok"]
    assert skipped == {**{r: reasons.count(r) for r in set(reasons)}, "empty class folder": 1}


def test_run_images_with_mask_folder(tmp_path: Path) -> None:
    src, masks = tmp_path / "src" / "cls", tmp_path / "masks" / "cls"
    src.mkdir(parents=True)
    masks.mkdir(parents=True)
    for k in range(3):
        Image.fromarray(_gradient()).save(src / f"im{k}.jpg")
    mask = np.zeros((40, 48), np.uint8)
    mask[10:30, 12:36] = 255
    Image.fromarray(mask).save(masks / "im0.png")  # a different suffix is fine
    Image.fromarray(mask).save(masks / "im1.png")
    out = run_images(ImagesConfig(src=tmp_path / "src", out=tmp_path / "ds", resolution=R, masks=tmp_path / "masks", workers=1))
    dataset = open_dataset(out)
    assert dataset.info.num_images == 2 and dataset.info.has_masks
    assert dataset.masks[0].max() == 255 and dataset.masks[0].min() == 0
    assert json.loads((out / "manifest.json").read_text())["source"]["skipped"] == {"no mask": 1}


def test_expand_image_paths_expands_folders_sorted_and_names_bad_paths(tmp_path):
    from unflat.data.image_files import expand_image_paths, readable_image_paths
    from unflat.errors import UserError

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.png", "a.jpg"):
        Image.new("RGB", (20, 20), (10, 20, 30)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    single = tmp_path / "c.png"
    Image.new("RGB", (20, 20)).save(single)
    assert expand_image_paths([single, folder]) == [single, folder / "a.jpg", folder / "b.png"]
    assert readable_image_paths([folder]) == [folder / "a.jpg", folder / "b.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="empty: folder holds no images"):
        expand_image_paths([empty])
    with pytest.raises(UserError, match="missing.png: no such image file or folder"):
        expand_image_paths([tmp_path / "missing.png"])
    with pytest.raises(UserError, match="no images given"):
        expand_image_paths([])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="cannot read image .*broken.png"):
        readable_image_paths([broken])


def test_unique_stems_and_padded_content_box():
    from unflat.data.image_files import padded_content_box, unique_stems

    assert unique_stems([Path("a/x.png"), Path("b/x.jpg"), Path("y.png"), Path("c/x.png")]) == ["x", "x-1", "y", "x-2"]
    assert padded_content_box((200, 100), 64) == (16, 0, 48, 64)  # wide: rows padded above and below
    assert padded_content_box((30, 60), 64) == (0, 16, 64, 48)
