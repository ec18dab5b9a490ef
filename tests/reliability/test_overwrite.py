"""`--overwrite` replaces only what unflat wrote, and output commands never write over a user's files.

Each test plants a user's file where unflat is told to write, runs the command as a user does, and checks
the file is still there, byte for byte, and the error is one line saying which folder, why and how to fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_sphere_dataset
from helpers import assert_one_line_error, cli_error
from unflat.data.format import DatasetWriter, check_dataset_destination, open_dataset
from unflat.errors import UserError
from unflat.outputs import OUTPUT_MARKER, PARTIAL_MARKER, claim_output_dir


def _photos(src: Path, n: int = 2) -> Path:
    (src / "cls").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.fromarray(np.full((32, 32, 3), (40 + 60 * k) % 256, np.uint8)).save(src / "cls" / f"p{k}.png")
    return src


def _images_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    # the photos are flat colours (no object): --crop center, or --crop object (the default) would skip them all
    return ["dataset", "images", "--src", str(src), "--out", str(out), "--resolution", "16", "--workers", "1",
            "--crop", "center", *extra]


def _plant(folder: Path, name: str = "precious/thesis.txt") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("four years of work")
    return path


def test_overwrite_refuses_a_user_folder_and_keeps_the_thesis(tmp_path: Path, capsys) -> None:
    """The issue's reproduction: `dataset ... --out that_folder --overwrite` deleted precious/thesis.txt."""
    folder = tmp_path / "that_folder"
    thesis = _plant(folder)
    code, err = cli_error(capsys, _images_cmd(_photos(tmp_path / "src"), folder, "--overwrite"))
    assert_one_line_error(code, err, str(folder), "not an unflat dataset", "choose a new --out")
    assert thesis.read_text() == "four years of work"
    assert sorted(p.name for p in folder.iterdir()) == ["precious"]
    assert not (tmp_path / "that_folder.partial").exists()


def test_synth_overwrite_refuses_a_user_folder_the_issues_reproduction(tmp_path: Path, capsys) -> None:
    """`unflat dataset synth --category mug --num-shapes 1 --out that_folder --overwrite` (issue 26, verbatim)."""
    folder = tmp_path / "that_folder"
    thesis = _plant(folder)
    synth = ["dataset", "synth", "--category", "mug", "--num-shapes", "1", "--resolution", "16", "--views-per-shape", "1",
             "--workers", "1"]
    code, err = cli_error(capsys, synth + ["--out", str(folder), "--overwrite"])
    assert_one_line_error(code, err, str(folder), "not an unflat dataset")
    assert thesis.read_text() == "four years of work" and sorted(p.name for p in folder.iterdir()) == ["precious"]
    made = tmp_path / "made"
    assert cli_error(capsys, synth + ["--out", str(made)])[0] == 0
    assert cli_error(capsys, synth + ["--out", str(made), "--overwrite", "--seed", "1"])[0] == 0  # its own dataset
    assert open_dataset(made).info.num_images == 1


def test_overwrite_refuses_a_folder_with_a_planted_manifest_that_holds_other_files(tmp_path: Path, capsys) -> None:
    """A user's folder that happens to hold a manifest.json in unflat's format, or a dataset the user added files to."""
    data = write_sphere_dataset(tmp_path / "data", num_shapes=2)
    notes = _plant(data, "notes.txt")
    code, err = cli_error(capsys, _images_cmd(_photos(tmp_path / "src"), data, "--overwrite"))
    assert_one_line_error(code, err, str(data), "notes.txt", "did not write")
    assert notes.read_text() == "four years of work"
    assert open_dataset(data).info.num_images == 2  # the old dataset is untouched too


def test_overwrite_replaces_an_unflat_dataset_and_an_empty_folder(tmp_path: Path, capsys) -> None:
    src = _photos(tmp_path / "src", n=3)
    data = write_sphere_dataset(tmp_path / "data", num_shapes=2)
    assert cli_error(capsys, _images_cmd(src, data))[0] == 1  # an existing dataset needs --overwrite
    assert cli_error(capsys, _images_cmd(src, data, "--overwrite"))[0] == 0
    assert open_dataset(data).info.num_images == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "src"]  # no .partial or .replaced-* left
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_error(capsys, _images_cmd(src, empty))[0] == 0
    assert open_dataset(empty).info.num_images == 3


def test_non_empty_folder_without_overwrite_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "mine"
    thesis = _plant(folder)
    code, err = cli_error(capsys, _images_cmd(_photos(tmp_path / "src"), folder))
    assert_one_line_error(code, err, str(folder), "not an unflat dataset")
    assert thesis.exists()


def test_out_naming_an_existing_file_is_refused(tmp_path: Path, capsys) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, err = cli_error(capsys, _images_cmd(_photos(tmp_path / "src"), target, "--overwrite"))
    assert_one_line_error(code, err, str(target), "is a file")
    assert target.read_text() == "mine"


@pytest.mark.parametrize("where", ["dot", "cwd-absolute", "parent-of-cwd", "home"])
def test_out_dot_home_and_folders_above_them_are_never_replaced(tmp_path: Path, capsys, monkeypatch, where: str) -> None:
    home, cwd = tmp_path / "home", tmp_path / "home" / "work"
    thesis = _plant(cwd)
    # even a folder that looks like an unflat dataset: replacing the current or home folder is never right
    write_sphere_dataset(tmp_path / "ds", num_shapes=1)
    for name in ("manifest.json", "images.npy"):
        (cwd / name).write_bytes((tmp_path / "ds" / name).read_bytes())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    out = {"dot": Path("."), "cwd-absolute": cwd, "parent-of-cwd": Path(".."), "home": Path("~").expanduser()}[where]
    code, err = cli_error(capsys, _images_cmd(_photos(tmp_path / "src"), out, "--overwrite"))
    assert_one_line_error(code, err, "will not write a dataset in place of this folder", "choose a new --out")
    assert thesis.read_text() == "four years of work"
    assert not any(p.name.endswith(".partial") for p in tmp_path.rglob("*"))


def test_a_user_folder_named_like_the_partial_folder_is_not_deleted(tmp_path: Path, capsys) -> None:
    """unflat assembles DIR in DIR.partial: a user's own DIR.partial folder was rmtree'd without a look."""
    partial = tmp_path / "data.partial"
    thesis = _plant(partial)
    code, err = cli_error(capsys, _images_cmd(_photos(tmp_path / "src"), tmp_path / "data"))
    assert_one_line_error(code, err, str(partial), "not made by unflat")
    assert thesis.exists() and not (tmp_path / "data").exists()


def test_partial_folder_left_by_a_killed_writer_is_removed(tmp_path: Path, capsys) -> None:
    partial = tmp_path / "data.partial"
    (partial / "chunks").mkdir(parents=True)
    (partial / PARTIAL_MARKER).write_text("")
    (partial / "chunks" / "00000-images.npy").write_bytes(b"cut")
    assert cli_error(capsys, _images_cmd(_photos(tmp_path / "src"), tmp_path / "data"))[0] == 0
    assert not partial.exists() and open_dataset(tmp_path / "data").info.num_images == 2


def test_files_planted_while_the_dataset_is_written_are_kept(tmp_path: Path) -> None:
    """The check is made again just before the old dataset is replaced (a user may copy files in meanwhile)."""
    data = write_sphere_dataset(tmp_path / "data", num_shapes=1)
    writer = DatasetWriter(data, 16, ["a"], kind="test", with_masks=False, overwrite=True)
    from unflat.cameras import Cameras
    import torch

    writer.add(np.zeros((16, 16, 3), np.uint8), Cameras.sample_orbit(1, torch.Generator().manual_seed(0)))
    late = _plant(data, "late.txt")
    with pytest.raises(UserError, match="late.txt"):
        writer.finalize()
    assert late.exists() and open_dataset(data).info.num_images == 1
    assert not (tmp_path / "data.partial").exists()


def test_check_dataset_destination_unit(tmp_path: Path) -> None:
    check_dataset_destination(tmp_path / "new", overwrite=False)
    with pytest.raises(UserError, match="/ .*root|root of the file system"):
        check_dataset_destination(Path("/"), overwrite=True)


# ---- output folders of generate / export / invert / reconstruct --------------------------------
def test_output_folder_rule(tmp_path: Path) -> None:
    out = claim_output_dir(tmp_path / "gen", "generate")
    assert (out / OUTPUT_MARKER).is_file()
    (out / "samples_all.png").write_bytes(b"old output")
    claim_output_dir(out, "generate")  # a folder unflat wrote: may write again
    mine = tmp_path / "mine"
    thesis = _plant(mine, "samples_all.png")
    with pytest.raises(UserError, match="not written by unflat"):
        claim_output_dir(mine, "generate")
    assert thesis.read_text() == "four years of work" and not (mine / OUTPUT_MARKER).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        claim_output_dir(tmp_path / "file", "generate")


def test_out_that_cannot_be_written_is_one_line(tmp_path: Path, capsys) -> None:
    code, err = cli_error(capsys, _images_cmd(_photos(tmp_path / "src"), Path("/proc/unflat-test/data")))
    assert_one_line_error(code, err, "/proc/unflat-test/data", "cannot write")


def test_demo_refuses_a_user_folder(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "project"
    thesis = _plant(mine, "samples/figure.png")
    code, err = cli_error(capsys, ["demo", "--out", str(mine)])
    assert_one_line_error(code, err, str(mine), "choose a new --out")
    assert thesis.read_text() == "four years of work" and sorted(p.name for p in mine.iterdir()) == ["samples"]


def test_disk_full_while_writing_a_dataset_is_one_line_and_leaves_nothing(tmp_path: Path, capsys) -> None:
    """A real short write: the file-size limit (RLIMIT_FSIZE) cuts images.npy like a full disk would (was a
    traceback, and DIR.partial was left filling the disk). The dataset it was to replace is kept."""
    import resource
    import signal

    src = _photos(tmp_path / "src", n=40)
    data = write_sphere_dataset(tmp_path / "data", num_shapes=2)
    before = (data / "images.npy").read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))  # 40 x 64 x 64 x 3 = 492 kB of images
    try:
        code, err = cli_error(capsys, ["dataset", "images", "--src", str(src), "--out", str(data), "--resolution", "64",
                                       "--workers", "1", "--overwrite", "--crop", "center"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert_one_line_error(code, err, str(data), "could not write the dataset", "is the disk full?", "as it was")
    assert not (tmp_path / "data.partial").exists()
    assert (data / "images.npy").read_bytes() == before and open_dataset(data).info.num_images == 2
