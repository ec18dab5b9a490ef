"""Commands that write outputs (`generate`, `export`, `invert`, `reconstruct`, `evaluate`, `train backbone`'s
install into the dataset) never write over a file of the user's: an output folder must be new, empty or one
unflat wrote (it leaves `.unflat-output` there), an output file must be absent or one unflat wrote.

Each test plants a user's file under the name unflat would write and checks it survives byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import train_tiny_runs, write_sphere_dataset
from helpers import assert_one_line_error, cli_error
from unflat import cli
from unflat.outputs import OUTPUT_MARKER


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny backbone installed into a 24-sphere dataset, 1-step mvtriplane and progressive runs."""
    root = tmp_path_factory.mktemp("outputs")
    single = write_sphere_dataset(root / "single", num_shapes=24)
    multi = write_sphere_dataset(root / "multi", num_shapes=6, views_per_shape=4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("UNFLAT_CACHE_DIR", str(root / "cache"))
            assert cli.main(["train", "backbone", "--preset", "tiny", "--data", str(single), "--out", str(root / "backbone"),
                             "--no-tensorboard", "--device", "cpu"]) == 0
    finally:
        torch.set_num_threads(threads)
    train_tiny_runs(root, {"mvtriplane": ("mvtriplane", single), "progressive": ("progressive", multi)})
    photo = root / "photo.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(photo)
    return {"root": root, "data": single, "mvtriplane": root / "mvtriplane", "progressive": root / "progressive",
            "photo": photo}


def _user_folder(path: Path, *names: str) -> dict[str, bytes]:
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / name).write_bytes(f"the user's own {name}".encode())
    return {p.name: p.read_bytes() for p in path.iterdir()}


def _as_is(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


def _commands(runs, out: Path) -> dict[str, list[str]]:
    return {
        "generate": ["generate", str(runs["mvtriplane"]), "--num", "1", "--out", str(out), "--device", "cpu"],
        "export": ["export", str(runs["mvtriplane"]), "--num", "1", "--out", str(out), "--device", "cpu"],
        "invert": ["invert", str(runs["mvtriplane"]), str(runs["photo"]), "--steps-w", "1", "--steps-g", "1",
                   "--out", str(out), "--device", "cpu"],
        "reconstruct": ["reconstruct", str(runs["progressive"]), str(runs["photo"]), "--no-turntable", "--out", str(out),
                        "--device", "cpu"],
    }


OUTPUT_NAMES = {"generate": "samples_class0_class0.png", "export": "mesh_0000_class0.glb", "invert": "photo.png",
                "reconstruct": "photo.glb"}


@pytest.mark.parametrize("command", list(OUTPUT_NAMES))
def test_output_command_refuses_a_user_folder(runs, tmp_path: Path, capsys, command: str) -> None:
    mine = tmp_path / "mine"
    before = _user_folder(mine, OUTPUT_NAMES[command], "thesis.txt")
    code, err = cli_error(capsys, _commands(runs, mine)[command])
    assert_one_line_error(code, err, str(mine), "not written by unflat", "choose a new --out")
    assert _as_is(mine) == before and not (mine / OUTPUT_MARKER).exists()


@pytest.mark.parametrize("command", list(OUTPUT_NAMES))
def test_output_command_writes_a_new_folder_and_may_write_it_again(runs, tmp_path: Path, capsys, command: str) -> None:
    out = tmp_path / "out"
    assert cli_error(capsys, _commands(runs, out)[command])[0] == 0
    assert (out / OUTPUT_MARKER).is_file() and len(list(out.iterdir())) > 1
    assert cli_error(capsys, _commands(runs, out)[command])[0] == 0  # unflat's own folder: written again


@pytest.mark.parametrize("command", ["generate", "export"])
def test_output_command_refuses_a_file_as_out(runs, tmp_path: Path, capsys, command: str) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, err = cli_error(capsys, _commands(runs, target)[command])
    assert_one_line_error(code, err, str(target), "is a file")
    assert target.read_text() == "mine"


@pytest.mark.parametrize("num", ["0", "-1"])
def test_generate_and_export_num_must_be_positive(runs, tmp_path: Path, capsys, num: str) -> None:
    for command in ("generate", "export"):
        argv = [a if a != "1" else num for a in _commands(runs, tmp_path / "out")[command]]
        code, err = cli_error(capsys, argv)
        assert_one_line_error(code, err, "--num must be > 0")
    assert not (tmp_path / "out").exists()


def test_evaluate_does_not_replace_a_users_metrics_or_report(runs, tmp_path: Path, capsys) -> None:
    base = ["evaluate", str(runs["mvtriplane"]), "--metrics", "fid", "--num-samples", "24", "--batch-size", "24",
            "--cache-dir", str(tmp_path / "ref"), "--device", "cpu"]
    mine = tmp_path / "metrics.json"
    mine.write_text('{"my": "numbers"}')
    code, err = cli_error(capsys, base + ["--out", str(mine)])
    assert_one_line_error(code, err, str(mine), "not a metrics file written by unflat")
    assert mine.read_text() == '{"my": "numbers"}'
    report = tmp_path / "other" / "report.md"
    report.parent.mkdir()
    report.write_text("# my notes\n")
    code, err = cli_error(capsys, base + ["--out", str(report.parent / "metrics.json")])
    assert_one_line_error(code, err, str(report), "not an evaluation report written by unflat")
    assert report.read_text() == "# my notes\n" and not (report.parent / "metrics.json").exists()
    fresh = tmp_path / "fresh" / "metrics.json"  # unflat's own files are replaced on the next evaluation
    assert cli_error(capsys, base + ["--out", str(fresh)])[0] == 0
    assert cli_error(capsys, base + ["--out", str(fresh)])[0] == 0


def test_train_backbone_does_not_replace_a_users_backbone_file_in_the_dataset(runs, tmp_path: Path, capsys, monkeypatch) -> None:
    data = write_sphere_dataset(tmp_path / "data", num_shapes=8)
    mine = data / "backbone.safetensors"
    mine.write_bytes(b"my own weights, not unflat's")
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["train", "backbone", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "bb"),
                     "--no-tensorboard", "--device", "cpu"]) == 0
    assert "not written by unflat" in capsys.readouterr().out
    assert mine.read_bytes() == b"my own weights, not unflat's"
    assert (tmp_path / "bb" / "backbone.safetensors").is_file()
    # the dataset with unflat's own installed backbone can still be replaced with --overwrite
    assert (runs["data"] / "backbone.safetensors").is_file()
    from unflat.data.format import foreign_entries

    assert foreign_entries(runs["data"]) == []


def test_from_generator_overwrite_refuses_a_user_folder_before_rendering(runs, tmp_path: Path, capsys, monkeypatch) -> None:
    from unflat.data import from_generator

    mine = tmp_path / "mine"
    before = _user_folder(mine, "thesis.txt")
    rendered = []
    monkeypatch.setattr(from_generator, "render_shapes", lambda *a, **k: rendered.append(1) or iter(()))
    code, err = cli_error(capsys, ["dataset", "from-generator", str(runs["mvtriplane"]), "--num-shapes", "1",
                                   "--out", str(mine), "--overwrite", "--device", "cpu"])
    assert_one_line_error(code, err, str(mine), "not an unflat dataset")
    assert _as_is(mine) == before and not rendered and not (tmp_path / "mine.partial").exists()


@pytest.mark.parametrize("flag, value, problem", [
    ("--seed", str(2**64), "--seed must be in"), ("--seed", "-1", "--seed must be in"),
    ("--device", "bogus", "--device bogus: not a device"), ("--device", "cuda:99", "no such CUDA GPU"),
    ("--device", "meta", "unflat runs on cpu, cuda or mps"),
    ("--class-id", "5", "--class-id must be in [0, 2)"), ("--class-id", "-1", "--class-id must be in [0, 2)"),
])
@pytest.mark.parametrize("command", ["generate", "export"])
def test_generate_and_export_number_and_device_zoo(runs, tmp_path: Path, capsys, command: str, flag: str, value: str,
                                                   problem: str) -> None:
    argv = _commands(runs, tmp_path / "out")[command]
    if flag == "--device":
        argv = argv[:-1] + [value]
    else:
        argv = argv + [flag, value]
    code, err = cli_error(capsys, argv)
    assert_one_line_error(code, err, problem)
    assert not (tmp_path / "out").exists()


def test_disk_full_while_generating_is_one_line(runs, tmp_path: Path, capsys) -> None:
    import resource
    import signal

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, hard))  # the marker fits, a sample grid does not
    try:
        code, err = cli_error(capsys, _commands(runs, tmp_path / "out")["generate"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert_one_line_error(code, err, "could not write", "free disk space")
