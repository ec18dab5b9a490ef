"""`unflat export --resolution/--level/--min-component` reach the exported meshes, and a setting a method does
not have is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import trimesh

from conftest import write_sphere_dataset
from unflat import cli

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export-settings")
    data = write_sphere_dataset(root / "data", num_shapes=4)
    out = root / "mv"
    assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(data), "--out", str(out), "--max-steps", "1",
                     "--no-tensorboard"]) == 0
    return out


def _export(run: Path, out: Path, *flags: str) -> trimesh.Trimesh:
    assert cli.main(["export", str(run), "--num", "1", "--format", "ply", "--out", str(out), *flags]) == 0
    (path,) = sorted(out.glob("*.ply"))
    return trimesh.load(path, process=False)


def test_resolution_and_min_component_reach_the_mesh(run, tmp_path):
    config_before = (run / "config.yaml").read_text()
    coarse = _export(run, tmp_path / "coarse", "--resolution", "12", "--min-component", "0")
    fine = _export(run, tmp_path / "fine", "--resolution", "40", "--min-component", "0")
    assert len(fine.vertices) > 2 * len(coarse.vertices) > 0
    # marching-cubes vertices lie on grid edges: at 12^3 over the box every coordinate is on the 12-point lattice
    # in at least two of its three axes
    import numpy as np

    half = 1.0  # tiny preset's box_size is 2 (the unit box of the conventions)
    lattice = np.linspace(-half, half, 12)
    on = np.abs(coarse.vertices[:, :, None] - lattice[None, None]).min(-1) < 1e-4
    assert (on.sum(1) >= 2).mean() > 0.99
    # keeping only components with >= 99% of the faces leaves one component
    largest = _export(run, tmp_path / "largest", "--resolution", "40", "--min-component", "0.99")
    assert len(largest.split(only_watertight=False)) == 1 and len(largest.faces) <= len(fine.faces)
    assert (run / "config.yaml").read_text() == config_before  # the run itself is not changed


def test_level_moves_the_surface(run, tmp_path):
    import numpy as np

    from unflat.runs import load_run

    method = load_run(run, "cpu").method
    grid = method.G_ema.density_grid(method.planes_for(*method._latents(1, 0, None)[:2])[0], 24, method.cfg.generator.box_size / 2)
    low, high = float(np.quantile(grid.cpu().numpy(), 0.3)), float(np.quantile(grid.cpu().numpy(), 0.7))
    a = _export(run, tmp_path / "low", "--resolution", "24", "--level", str(low), "--min-component", "0")
    b = _export(run, tmp_path / "high", "--resolution", "24", "--level", str(high), "--min-component", "0")
    assert not np.allclose(a.bounds, b.bounds) or len(a.faces) != len(b.faces)


def test_a_setting_the_method_lacks_is_one_line(run, tmp_path, capsys):
    assert cli.main(["export", str(run), "--min-component", "1.5", "--out", str(tmp_path / "bad")]) != 0
    err = capsys.readouterr().err
    assert "--min-component: must be in [0, 1)" in err and "Traceback" not in err
    assert cli.main(["export", str(run), "--resolution", "0", "--out", str(tmp_path / "bad2")]) != 0
    assert "--resolution" in capsys.readouterr().err


def test_every_declared_export_setting_is_a_config_field():
    from unflat.config import field_value
    from unflat.methods.iggan import IGGAN
    from unflat.methods.mvtriplane import MVTriplane
    from unflat.methods.tdgp import TDGP

    for method in (IGGAN, MVTriplane, TDGP):
        assert method.export_settings, method.name
        for path in method.export_settings.values():  # a (dotted) field path of the method's config
            field_value(method.Config(), path)
    assert "resolution" not in IGGAN.export_settings  # its meshes follow the voxel grid
