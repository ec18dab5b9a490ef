"""The README's tour, run as written (parsed from README.md, so the two cannot drift) at tiny sizes, in a fresh
folder, on CPU; every output the tour names is checked.

How the commands are made tiny (``TINY``, applied by ``shrink``): the flags listed for a command replace the
README's values or are added; nothing else of the command changes. Trainings get ``--preset tiny`` (a step in
well under a second); datasets get 12 shapes at 16x16; sampling commands a couple of samples; PTI 2+1 steps.
``from-generator`` also gets ``--max-mask-fraction 1``: a 2-step generator fills its whole cube, which the
quality filter would otherwise reject. The tour's inputs (``my_meshes/``, ``photos/``, ``photo.png``) are made
here. ``unflat view`` and ``torchrun`` run as processes (a server, two ranks); the rest in-process.

The tour must teach nothing wrong: no command prints a ``warning:`` line, except the evaluation backbone's (tiny
data holds out 2 images, too few to validate a backbone: at the README's sizes it holds out 100).
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from unflat import cli

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
TOUR_HEADING = "## A tour of the commands"

TINY: dict[tuple[str, ...], dict[str, str]] = {
    ("dataset", "synth"): {"--num-shapes": "12", "--resolution": "16"},
    ("dataset", "render"): {"--resolution": "16"},
    ("dataset", "images"): {"--resolution": "16"},
    ("dataset", "from-generator"): {"--num-shapes": "4", "--views-per-shape": "2", "--max-mask-fraction": "1"},
    ("train",): {"--preset": "tiny"},
    ("generate",): {"--num": "2"},
    ("export",): {"--num": "2"},
    ("reconstruct",): {"--turntable-frames": "2", "--turntable-resolution": "32"},
    ("invert",): {"--steps-w": "2", "--steps-g": "1"},
    ("evaluate",): {"--num-samples": "8", "--batch-size": "8", "--num-shapes": "2", "--num-points": "128"},
}


def tour_commands(readme: Path = REPO / "README.md") -> list[list[str]]:
    """The commands of the README's tour block, comments removed, split like a shell would."""
    text = readme.read_text()
    block = text[text.index(TOUR_HEADING):].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def shrink(argv: list[str]) -> list[str]:
    """``argv`` with the tiny flags of ``TINY`` (the longest matching command prefix) replacing or added."""
    words = [w for w in argv if not w.startswith("-")]
    keys = [key for key in TINY if tuple(words[:len(key)]) == key and "--resume" not in argv]
    flags = TINY[max(keys, key=len)] if keys else {}
    out = list(argv)
    for flag, value in flags.items():
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


def make_inputs(root: Path) -> None:
    """What the tour expects the user to have: meshes, a folder of photos by class, one photo."""
    (root / "my_meshes").mkdir()
    trimesh.creation.box(extents=(1.0, 0.6, 0.8)).export(root / "my_meshes" / "box.obj")
    trimesh.creation.icosphere(subdivisions=2, radius=0.7).export(root / "my_meshes" / "ball.ply")
    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        (root / "photos" / name).mkdir(parents=True)
        for i in range(3):
            image = np.full((40, 40, 3), 255, np.uint8)
            image[8 + i:32, 10:30 + i] = colour
            Image.fromarray(image).save(root / "photos" / name / f"{i}.png")
    photo = np.full((48, 48, 3), 255, np.uint8)
    photo[10:40, 12:36] = rng.integers(60, 200, (30, 24, 3))
    Image.fromarray(photo).save(root / "photo.png")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_view(argv: list[str], env: dict) -> str:
    """Start `unflat view` (a server), fetch its index page, stop it: the page's HTML."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "unflat", *argv[1:], "--port", str(port), "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/")
                response = connection.getresponse()
                assert response.status == 200
                return response.read().decode()
            except (ConnectionRefusedError, OSError):
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.3)
        raise AssertionError("the viewer did not answer within 60 s")
    finally:
        proc.terminate()  # the process this test started, by its handle
        proc.wait(timeout=30)


def check_outputs(argv: list[str], root: Path, out: str, err: str) -> None:
    """What the README says each command makes."""
    words = [w for w in argv if not w.startswith("-")] or argv
    flag = lambda name: Path(argv[argv.index(name) + 1])  # noqa: E731
    if words[:2] == ["dataset", "synth"] or words[:2] == ["dataset", "render"] or words[:2] == ["dataset", "images"]:
        manifest = json.loads((root / flag("--out") / "manifest.json").read_text())
        assert manifest["resolution"] == 16 and manifest["num_images"] > 0
        if "--category" in argv:
            categories = argv[argv.index("--category") + 1:]
            categories = categories[:next((i for i, w in enumerate(categories) if w.startswith("-")), len(categories))]
            assert manifest["class_names"] == categories
        if words[1] == "images":
            assert manifest["class_names"] == ["blue", "red"]  # class sub-folders become labels
        if words[1] == "render":
            assert manifest["num_shapes"] == 2
    elif words[0] == "train" and "--resume" not in argv:
        run = root / flag("--out") if "--out" in argv else None
        if words[1] == "backbone":
            assert (root / flag("--data") / "backbone.safetensors").is_file()
            return
        for name in ("config.yaml", "run.log", "metrics.jsonl", "checkpoints/latest.pt", "tensorboard"):
            assert (run / name).exists(), name
        assert list((run / "samples").glob("step-*.png"))
    elif words[0] == "train":
        assert "--max-steps" in err  # a finished run: says how to train further
    elif words[0] == "generate":
        folder = root / flag("--out")
        assert (folder / "renders.png").is_file() and len(list(folder.glob("voxels_*.npy"))) == 2
        assert list(folder.glob("*.glb")) or "note:" in err  # meshes, or one line saying why not
    elif words[0] == "export":
        folder = root / flag("--out")
        glbs, objs = sorted(folder.glob("*.glb")), sorted(folder.glob("*.obj"))
        assert glbs and len(glbs) == len(objs) and f"exported {len(glbs)} of 2 meshes" in out
        assert all(len(trimesh.load(p, force="mesh").faces) > 0 for p in glbs)
    elif words[:2] == ["dataset", "from-generator"]:
        manifest = json.loads((root / flag("--out") / "manifest.json").read_text())
        assert manifest["num_shapes"] == 4 and manifest["views_per_shape"] == 2 and manifest["has_masks"]
    elif words[0] == "reconstruct":
        folder = root / flag("--out")
        assert len(trimesh.load(folder / "photo.glb", force="mesh").faces) > 0 and (folder / "photo.gif").is_file()
    elif words[0] == "invert":
        folder = root / flag("--out") / "photo"
        assert (folder / "reconstruction.png").is_file() and (folder / "inversion.json").is_file()
        assert "invert photo.png stage 1 (w): 2/2 steps in" in err
    elif words[0] == "evaluate":
        results = json.loads((root / words[1] / "evaluation" / "metrics.json").read_text())
        assert results["complete"] and results["images"]["fid"] >= 0
        assert (root / words[1] / "evaluation" / "report.md").is_file()
    elif argv == ["--help"]:
        assert all(name in out for name in cli.COMMANDS)


def test_the_readme_tour_runs_as_written_at_tiny_sizes(tmp_path: Path, monkeypatch, capsys) -> None:
    commands = tour_commands()
    assert len(commands) >= 15 and all(c[0] in ("unflat", "torchrun") for c in commands)
    make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "UNFLAT_CACHE_DIR": str(tmp_path / "cache")}
    seen = set()
    for command in commands:
        argv = shrink(command[1:]) if command[0] == "unflat" else command
        if command[0] == "torchrun":  # two CPU ranks (gloo), the tiny preset
            i = command.index("-m")
            tiny = shrink(command[i + 2:]) + ["--device", "cpu", "--out", "runs/ddp"]
            proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", *command[1:i], "-m",
                                   command[i + 1], *tiny], env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert (tmp_path / "runs" / "ddp" / "checkpoints" / "latest.pt").is_file()
            continue
        if argv[0] == "view":
            page = run_view(command, env)
            assert "samples/step-" in page
            seen.add("view")
            continue
        code = cli.main(argv)
        captured = capsys.readouterr()
        assert code == 0, f"unflat {' '.join(argv)}: exit {code}\n{captured.err[-3000:]}"
        warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")
                    and not (argv[0] == "evaluate" and line.startswith("warning: the backbone"))]
        assert not warnings, f"unflat {' '.join(argv)} teaches something wrong: {warnings}"
        check_outputs(argv, tmp_path, captured.out, captured.err)
        seen.add(argv[0])
    assert {"dataset", "train", "generate", "export", "reconstruct", "invert", "evaluate", "view"} <= seen


def test_shrink_replaces_and_adds_flags() -> None:
    assert shrink(["train", "iggan", "--data", "d", "--preset", "small"]) == ["train", "iggan", "--data", "d",
                                                                              "--preset", "tiny"]
    assert shrink(["generate", "r", "--num", "16"]) == ["generate", "r", "--num", "2"]
    assert shrink(["dataset", "from-generator", "r"])[-2:] == ["--max-mask-fraction", "1"]
    assert shrink(["view", "runs/ig"]) == ["view", "runs/ig"]
