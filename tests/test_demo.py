"""`unflat demo` end to end at tiny sizes: the default demo (shipped models, a short training interrupted and
resumed, the sample sheet) and `--full` (train from scratch; a short run says why it has no meshes yet)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from unflat import cli
from unflat.demo.sheet import CELL_SIDE, HEADER
from unflat.engine.checkpoint import load_checkpoint
from unflat.export.sheet import sheet_size

TINY = ["--photos", "1", "--heldout", "chair", "--generate", "car", "--train-steps", "4", "--interrupt-at", "2",
        "--train-shapes", "8", "--resolution", "16", "--preset", "tiny", "--turntable-frames", "8",
        "--turntable-resolution", "48", "--device", "cpu"]


def _printed(capfd) -> str:
    captured = capfd.readouterr()
    return " ".join((captured.out + captured.err).split())  # rich wraps long lines


def _logged_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_default_demo_reconstructs_generates_trains_resumes_and_draws_a_sheet(tmp_path: Path, capfd) -> None:
    out = tmp_path / "demo"
    code = cli.main(["demo", "--out", str(out), *TINY])
    printed = _printed(capfd)
    assert code == 0, printed

    # the shipped reconstructor: a textured GLB per held-back render and per photo, each with a turntable
    recon = sorted((out / "reconstructions").glob("*/*.glb"))
    assert [p.parent.name for p in recon] == ["heldout", "photos"], recon
    for path in recon:
        mesh = trimesh.load(path, force="mesh")
        assert len(mesh.faces) > 100 and isinstance(mesh.visual, trimesh.visual.TextureVisuals)
        assert mesh.visual.material.baseColorTexture is not None and mesh.visual.uv is not None
        gif = Image.open(path.with_suffix(".gif"))
        assert gif.n_frames == 8 and gif.size == (48, 48)
    # the shipped generator: a sample, its depth and a GLB with vertex colours of a non-constant surface
    car = out / "generated" / "car"
    assert Image.open(car / "sample.png").size == Image.open(car / "depth.png").size
    [glb] = sorted(car.glob("meshes/*.glb"))
    mesh = trimesh.load(glb, force="mesh")
    colours = np.asarray(mesh.visual.vertex_colors)
    assert len(mesh.faces) > 0 and colours.shape == (len(mesh.vertices), 4) and colours[:, :3].std() > 0
    assert Image.open(car / "turntable.gif").n_frames == 8

    # the short training: interrupted by SIGINT part-way, resumed from that step to the end
    interrupted = int(re.search(r"training interrupted at step (\d+)", printed).group(1))
    assert 2 <= interrupted < 4, printed
    assert f"resuming from step {interrupted}" in printed and f"resumed at step {interrupted}, finished at step 4" in printed
    run = out / "train-run"
    assert int(load_checkpoint(run)["step"]) == 4
    assert _logged_steps(run) == list(range(1, 5)), "the resumed run logs each step once, continuing the interrupted one"

    # the sheet: one row per held-back render, photo and generated shape, and one of the training's sample grids
    sheet = Image.open(out / "sheet.png")
    assert sheet.size == sheet_size(4, len(HEADER), CELL_SIDE)
    assert np.asarray(sheet.convert("L")).std() > 20  # pictures, not a blank page
    assert "demo finished" in printed and f"unflat view {out}" in printed and str(out / "sheet.png") in printed
    assert re.search(r"total \S* ?\d+\.\d", printed), printed

    # a re-run with more steps reuses the data and continues the run from its checkpoint (no new interruption)
    code = cli.main(["demo", "--out", str(out), *TINY, "--train-steps", "6", "--photos", "0", "--heldout",
                     "--generate"])
    printed = _printed(capfd)
    assert code == 0, printed
    assert "reusing training data" in printed and "resuming from step 4" in printed
    assert "training interrupted" not in printed and "[1/2] train" in printed
    assert int(load_checkpoint(run)["step"]) == 6 and _logged_steps(run) == list(range(1, 7))
    assert Image.open(out / "sheet.png").size == sheet_size(1, len(HEADER), CELL_SIDE)


@pytest.mark.parametrize("flags, says", [(["--interrupt-at", "4"], "--interrupt-at"),
                                         (["--heldout", "spaceship"], "unknown category spaceship")])
def test_bad_demo_options_are_one_line_errors(tmp_path: Path, capsys, flags: list[str], says: str) -> None:
    code = cli.main(["demo", "--out", str(tmp_path / "demo"), *TINY, *flags])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "demo").exists()


def test_a_very_short_full_demo_finishes_and_explains(tmp_path: Path, capfd) -> None:
    out = tmp_path / "demo"
    code = cli.main(["demo", "--full", "--out", str(out), "--max-steps", "4", "--num-shapes", "8", "--resolution", "16",
                     "--num-samples", "2", "--device", "cpu"])
    printed = _printed(capfd)
    assert code == 0, printed
    assert (out / "data" / "preview.png").exists() and (out / "run" / "checkpoints" / "latest.pt").exists()
    assert "demo finished" in printed and not (out / "sheet.png").exists()
    # 4 steps: either some sample already has a surface (meshes written) or the demo says to train longer
    assert any((out / "meshes").glob("*.glb")) or "train longer" in printed, printed


def test_a_shipped_model_of_the_wrong_kind_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    code = cli.main(["demo", "--out", str(tmp_path / "demo"), *TINY, "--reconstructor", "mvtriplane-6cat-64"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "--reconstructor mvtriplane-6cat-64" in err and "not a reconstructor" in err and "unflat models" in err
