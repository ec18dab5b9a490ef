"""What a fresh install gets: a consistent dependency set, and a core that works without the extras.

The install itself is proven by `.ci/run`, which makes a brand-new virtual environment every run and installs
as the README says; these tests catch, inside any environment, the two ways that broke before: a core
dependency that pins an exact version of another package (pyrender 0.1.45 pins PyOpenGL 3.1.0, which made
`pip install unflat` impossible next to PyOpenGL>=3.1.7), and core code that needs an optional extra.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("tensorboard", "skimage", "pyrender", "OpenGL", "imageio_ffmpeg", "nvdiffrast", "torchmetrics", "pytest")


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _pyproject() -> dict:
    text = (REPO / "pyproject.toml").read_text()
    try:
        import tomllib  # noqa: PLC0415  (Python >= 3.11)
    except ImportError:  # Python 3.10: pip vendors a TOML reader
        from pip._vendor import tomli as tomllib  # noqa: PLC0415
    return tomllib.loads(text)


def _closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """Installed distributions of ``names`` and everything they require (markers of this interpreter)."""
    from pip._vendor.packaging.requirements import Requirement  # noqa: PLC0415

    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower().replace("_", "-"))
    return seen


def test_no_core_dependency_pins_an_exact_version_of_another() -> None:
    from pip._vendor.packaging.requirements import Requirement  # noqa: PLC0415

    core = [_requirement_name(r) for r in _pyproject()["project"]["dependencies"]]
    assert "pyrender" not in core and "pyopengl" not in core
    pins = []
    for name, dist in _closure(core).items():
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            if any(spec.operator in ("==", "===") for spec in requirement.specifier):
                pins.append(f"{name} requires {raw}")
    # torch pins its own CUDA/triton builds exactly; those are one project's parts, not a conflict.
    pins = [p for p in pins if not p.startswith("torch requires") or not re.search(r"nvidia|triton|cuda", p)]
    assert not pins, pins


def test_pip_check_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    problems = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines()
                if line.strip() and not line.startswith("No broken requirements")
                and not re.search(r"pyrender .* requires pyopengl", line, re.IGNORECASE)]
    assert not problems, problems


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI runs inside the fresh virtual environment of .ci/run")
def test_ci_runs_in_an_isolated_virtual_environment() -> None:
    assert sys.prefix != sys.base_prefix, "CI must run inside the virtual environment that scripts/setup.sh made"
    config = (Path(sys.prefix) / "pyvenv.cfg").read_text()
    assert re.search(r"include-system-site-packages\s*=\s*false", config), config


_WITHOUT_EXTRAS = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {{name}}")
sys.meta_path.insert(0, Blocker())
from unflat import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _unflat_without_extras(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = _WITHOUT_EXTRAS.format(blocked=EXTRAS_ONLY)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def test_core_commands_work_without_any_extra(tmp_path: Path) -> None:
    """`unflat --help`, `dataset synth` (the moderngl renderer) and a tiny training run with every extra
    unimportable; the run says which extra would add TensorBoard."""
    help_text = _unflat_without_extras(["--help"], tmp_path)
    assert help_text.returncode == 0 and "dataset" in help_text.stdout, help_text.stderr
    data = tmp_path / "data"
    synth = _unflat_without_extras(["dataset", "synth", "--category", "mug", "--num-shapes", "2", "--views-per-shape", "2",
                                    "--resolution", "32", "--out", str(data)], tmp_path)
    assert synth.returncode == 0, synth.stderr
    from unflat.data.format import open_dataset  # noqa: PLC0415

    dataset = open_dataset(data)
    assert len(dataset) == 4 and dataset.masks is not None
    for image, mask in zip(dataset.images, dataset.masks):
        covered = mask > 127
        assert 0.05 < covered.mean() < 0.9  # a mug in the middle of the frame
        assert image[covered].mean() < image[~covered].mean() - 20  # drawn over the white background
    run = tmp_path / "run"
    train = _unflat_without_extras(["train", "mvtriplane", "--data", str(data), "--preset", "tiny", "--max-steps", "1",
                                    "--tensorboard", "--out", str(run)], tmp_path)
    assert train.returncode == 0, train.stderr[-2000:]
    assert (run / "checkpoints" / "latest.pt").exists() and not (run / "tensorboard").exists()
    assert "unflat[tensorboard]" in train.stdout + train.stderr + (run / "run.log").read_text()
