"""Long commands talk when their output is not a terminal: periodic plain progress lines with an ETA
(`invert`, `evaluate`'s phases, `dataset from-generator`, `export`), and no raw Python warnings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_sphere_dataset
from unflat import cli

pytestmark = pytest.mark.usefixtures("one_thread")
LINE = re.compile(r"^(?P<what>.+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>[\w ]+) \(\d+%\), [\d.e+-]+ [\w ]+/s, eta \d\d:\d\d:\d\d")


def progress_lines(text: str, what: str) -> list[re.Match]:
    return [m for m in map(LINE.match, text.splitlines()) if m and what in m["what"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lines")
    data = write_sphere_dataset(root / "data", num_shapes=8)
    assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(data), "--out", str(root / "run"),
                     "--no-tensorboard"]) == 0
    return root / "run"


def test_plain_lines_of_a_phase_count_up_with_an_eta(monkeypatch, capsys) -> None:
    from unflat.engine.progress import PhaseProgress

    monkeypatch.setenv("UNFLAT_PROGRESS_EVERY_S", "0")
    with PhaseProgress("work", 4, "items") as bar:
        for _ in range(4):
            bar.advance()
    err = capsys.readouterr().err
    lines = progress_lines(err, "work")
    assert [int(m["done"]) for m in lines] == [1, 2, 3]  # the 4th is the end line
    assert err.splitlines()[0] == "work: 4 items" and re.match(r"work: 4/4 items in [\d.]+ s", err.splitlines()[-1])


def test_invert_prints_periodic_progress_when_not_a_terminal(run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("UNFLAT_PROGRESS_EVERY_S", "0")
    image = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).uniform(0, 255, (16, 16, 3))).astype(np.uint8)).save(image)
    capsys.readouterr()
    assert cli.main(["invert", str(run), str(image), "--out", str(tmp_path / "pti"), "--steps-w", "3",
                     "--steps-g", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    stage1 = progress_lines(out.err, "invert photo.png stage 1 (w)")
    stage2 = progress_lines(out.err, "invert photo.png stage 2 (G)")
    assert [int(m["done"]) for m in stage1] == [1, 2] and all(int(m["total"]) == 3 for m in stage1)
    assert [int(m["done"]) for m in stage2] == [1]
    assert "wrote" in out.out and "for 1 image to" in out.out
    assert (tmp_path / "pti" / "photo" / "inversion.json").is_file()


def test_export_and_from_generator_talk_and_report_meshes(run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("UNFLAT_PROGRESS_EVERY_S", "0")
    capsys.readouterr()
    assert cli.main(["export", str(run), "--num", "3", "--format", "glb", "stl", "--out", str(tmp_path / "meshes"),
                     "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert [int(m["done"]) for m in progress_lines(out.err, "meshes")] == [1, 2]
    import trimesh

    stls = sorted((tmp_path / "meshes").glob("*.stl"))
    faces = [len(trimesh.load(p, force="mesh").faces) for p in stls]
    assert stls and all(f > 0 for f in faces)
    assert f"exported {len(stls)} of 3 meshes, " in out.out and f"{min(faces):,}" in out.out and "(glb, stl)" in out.out
    assert cli.main(["dataset", "from-generator", str(run), "--num-shapes", "3", "--views-per-shape", "2",
                     "--out", str(tmp_path / "mv"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert [int(m["done"]) for m in progress_lines(err, "from-generator")] == [1, 2]


def test_python_warnings_become_one_note_line(capsys) -> None:
    import warnings

    from unflat.engine.progress import warnings_as_notes

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings_as_notes()
        warnings.warn("seeds 0-3: nothing\nhere (Triggered internally at /x/y.cpp:12.)", UserWarning)
    err = capsys.readouterr().err
    assert err == "note: seeds 0-3: nothing here\n"


def test_dataset_synth_and_images_print_periodic_progress(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("UNFLAT_PROGRESS_EVERY_S", "0")
    assert cli.main(["dataset", "synth", "--category", "mug", "--num-shapes", "3", "--resolution", "16", "--workers", "1",
                     "--out", str(tmp_path / "synth")]) == 0
    err = capsys.readouterr().err
    assert [int(m["done"]) for m in progress_lines(err, "synth mug")] == [1, 2]
    assert re.search(r"synth mug: 3/3 shapes in [\d.]+ s", err)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(photos / f"{i}.png")
    assert cli.main(["dataset", "images", "--src", str(photos), "--crop", "center", "--resolution", "16",
                     "--out", str(tmp_path / "images")]) == 0
    err = capsys.readouterr().err
    assert [int(m["done"]) for m in progress_lines(err, "images")] == [1, 2]


def test_reconstruct_prints_periodic_progress(tmp_path: Path, monkeypatch, capsys) -> None:
    data = write_sphere_dataset(tmp_path / "mv", num_shapes=2, views_per_shape=2)
    assert cli.main(["train", "progressive", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "prog"),
                     "--max-steps", "1", "--no-tensorboard"]) == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.asarray(np.load(data / "images.npy", mmap_mode="r")[i])).save(photos / f"{i}.png")
    monkeypatch.setenv("UNFLAT_PROGRESS_EVERY_S", "0")
    capsys.readouterr()
    assert cli.main(["reconstruct", str(tmp_path / "prog"), str(photos), "--out", str(tmp_path / "out"),
                     "--batch-size", "1", "--no-turntable", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert [int(m["done"]) for m in progress_lines(err, "reconstruct")] == [1, 2]
    assert re.search(r"reconstruct: 3/3 images in [\d.]+ s", err)
    assert cli.main(["evaluate", str(tmp_path / "prog"), "--data", str(data), "--metrics", "iou", "--num-shapes", "2",
                     "--batch-size", "1", "--no-report", "--out", str(tmp_path / "eval.json")]) == 0
    err = capsys.readouterr().err
    assert [int(m["done"]) for m in progress_lines(err, "evaluate: reconstructions")] == [1]
    assert re.search(r"evaluate: reconstructions: 2/2 shapes in [\d.]+ s", err)


def test_evaluate_says_how_far_the_reference_features_are(run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from unflat import pretrained

    if not pretrained.efficientnet_available():
        pytest.skip("the efficientnet extra is not installed")
    monkeypatch.setenv("UNFLAT_PROGRESS_EVERY_S", "0")
    data = write_sphere_dataset(tmp_path / "data", num_shapes=8)
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--data", str(data), "--backbone", "efficientnet", "--metrics", "fid",
                     "--num-samples", "4", "--batch-size", "2", "--cache-dir", str(tmp_path / "cache"), "--no-report",
                     "--out", str(tmp_path / "m.json")]) == 0
    err = capsys.readouterr().err
    assert [int(m["done"]) for m in progress_lines(err, "evaluate: reference features")] == [2, 4, 6]
