"""The model zoo: pack a run, load it back (hash, manifest, shapes), refuse damaged or swapped files, and
`--model NAME` on the commands that load a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import train_tiny_runs, write_sphere_dataset
from unflat.cli import main
from unflat.zoo.format import ZOO_DIR_ENV, ZooError, manifests_in, read_manifest, shipped_dir
from unflat.zoo.load import load_model
from unflat.zoo.pack import pack_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """Tiny mvtriplane and progressive runs (1 step) and a zoo folder holding both, packed."""
    root = tmp_path_factory.mktemp("zoo")
    data = write_sphere_dataset(root / "spheres", num_shapes=6, views_per_shape=4)
    train_tiny_runs(root, {"mvt": ("mvtriplane", data), "prog": ("progressive", data)})
    licence = ["test spheres=made by the test"]
    pack_run(root / "mvt", "tiny-mvt", root / "models", commands=["unflat train mvtriplane --preset tiny"], licences=licence)
    pack_run(root / "prog", "tiny-prog", root / "models", licences=licence)
    return {"root": root, "data": data, "models": root / "models"}


@pytest.fixture
def zoo_env(zoo, monkeypatch) -> dict[str, Path]:
    monkeypatch.setenv(ZOO_DIR_ENV, str(zoo["models"]))
    return zoo


def test_every_shipped_model_loads_and_runs_on_cpu():
    shipped = manifests_in(shipped_dir())
    if not shipped:
        pytest.skip(f"no model ships yet in {shipped_dir()} (the lead adds them with `unflat models pack`)")
    total = 0
    for path in shipped:
        entry = read_manifest(path)
        total += entry.weights_path.stat().st_size
        run = load_model(entry, "cpu")
        assert run.spec.name == entry.method and run.step == entry.manifest["step"]
        for module in run.method.networks().values():
            assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in module.parameters())
        if entry.kind == "generator":
            out = run.method.sample(1, 0)
            assert torch.isfinite(out.images).all()
        else:
            net = run.method.net
            image = torch.zeros(1, 3, run.method.image_resolution, run.method.image_resolution)
            assert all(torch.isfinite(t).all() for t in _tensors(net(image)))
    assert total < 30e6, f"shipped weights are {total / 1e6:.1f} MB, over the 30 MB budget"


def test_a_shipped_flat_config_loads_through_the_flat_key_migration():
    """mvtriplane-6cat-64 was packed before the tri-plane configs nested: its manifest keeps the flat fields."""
    path = shipped_dir() / "mvtriplane-6cat-64.json"
    if not path.exists():
        pytest.skip("mvtriplane-6cat-64 does not ship")
    entry = read_manifest(path)
    flat = entry.manifest["config"]
    assert "d_channel_max" in flat and "discriminator" not in flat  # stored as written, not rewritten
    cfg = load_model(entry, "cpu").method.cfg
    assert cfg.generator.channel_max == flat["channel_max"] and cfg.discriminator.channel_max == flat["d_channel_max"]
    assert cfg.generator.plane_resolution == flat["plane_resolution"]
    assert cfg.export.mesh_density == flat["mesh_density"] and cfg.cameras.radius == flat["camera_radius"]


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [t for k in value.__dataclass_fields__ for t in _tensors(getattr(value, k))]
    return []


def test_manifest_records_what_trained_the_model(zoo):
    m = read_manifest(zoo["models"] / "tiny-mvt.json").manifest
    assert m["method"] == "mvtriplane" and m["kind"] == "generator" and m["loads"] == {"G_ema": "G_ema", "G": "G_ema"}
    assert list(m["networks"]) == ["G_ema"] and m["commands"] == ["unflat train mvtriplane --preset tiny"]
    assert m["config"]["max_steps"] == 1 and len(m["weights"]["sha256"]) == 64
    assert m["parameters"] > 0 and any(lic["licence"].startswith("Apache-2.0") for lic in m["licences"])
    p = read_manifest(zoo["models"] / "tiny-prog.json").manifest
    assert p["kind"] == "reconstructor" and list(p["networks"]) == ["G"]


def test_pack_then_load_gives_the_runs_outputs(zoo):
    from unflat.runs import load_run

    run, model = load_run(zoo["root"] / "mvt", "cpu"), load_model(str(zoo["models"] / "tiny-mvt.json"), "cpu")
    a, b = run.method.sample(2, 3), model.method.sample(2, 3)
    assert (a.images - b.images).abs().max() < 0.05  # fp16 weights
    run, model = load_run(zoo["root"] / "prog", "cpu"), load_model(str(zoo["models"] / "tiny-prog.json"), "cpu")
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for x, y in zip(_tensors(run.method.net(image)), _tensors(model.method.net(image))):
        assert torch.allclose(x, y, atol=2e-2, rtol=2e-2)
    assert model.method.data_stats == run.method.data_stats


def _copy_models(zoo, tmp_path: Path) -> Path:
    out = tmp_path / "models"
    shutil.copytree(zoo["models"], out)
    return out


def test_corrupted_weights_are_refused_before_reading(zoo, tmp_path):
    models = _copy_models(zoo, tmp_path)
    weights = models / "tiny-mvt.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ZooError, match=r"tiny-mvt.safetensors: sha256 .* does not match manifest tiny-mvt.json.*corrupted"):
        load_model(str(models / "tiny-mvt.json"))
    weights.write_bytes(bytes(data[:100]))
    with pytest.raises(ZooError, match="bytes, manifest tiny-mvt.json says"):
        load_model(str(models / "tiny-mvt.json"))


def test_swapped_weights_are_refused(zoo, tmp_path):
    models = _copy_models(zoo, tmp_path)
    shutil.copyfile(models / "tiny-prog.safetensors", models / "tiny-mvt.safetensors")
    with pytest.raises(ZooError, match="tiny-mvt.safetensors: .*belongs to another model"):
        load_model(str(models / "tiny-mvt.json"))
    # even with the manifest's hash and size edited to fit, the header names another model
    manifest = json.loads((models / "tiny-mvt.json").read_text())
    manifest["weights"].update(sha256=read_manifest(models / "tiny-prog.json").manifest["weights"]["sha256"],
                               bytes=(models / "tiny-prog.safetensors").stat().st_size)
    (models / "tiny-mvt.json").write_text(json.dumps(manifest))
    with pytest.raises(ZooError, match="header says name 'tiny-prog', manifest tiny-mvt.json says 'tiny-mvt'"):
        load_model(str(models / "tiny-mvt.json"))


def test_unknown_model_names_the_available_ones(zoo_env, capsys):
    assert main(["generate", "--model", "nope", "--out", str(zoo_env["root"] / "g")]) == 1
    err = capsys.readouterr().err
    assert "unknown model 'nope' (available: " in err and len(err.strip().splitlines()) == 1
    assert "tiny-mvt" in err and "tiny-prog" in err


def test_bad_zoo_dir_env_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(ZOO_DIR_ENV, str(tmp_path / "missing"))
    assert main(["models"]) == 1
    assert f"{ZOO_DIR_ENV}=" in capsys.readouterr().err


def test_models_lists_them(zoo_env, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-mvt" in out and "mvtriplane" in out and "generator" in out and "reconstructor" in out


def test_model_flag_on_each_command(zoo_env, tmp_path):
    image = next(p for p in sorted((zoo_env["data"]).rglob("*.png")) if "mask" not in p.name and "depth" not in p.name)
    assert main(["generate", "--model", "tiny-mvt", "--num", "1", "--out", str(tmp_path / "gen"), "--device", "cpu"]) == 0
    assert any((tmp_path / "gen").glob("*.png"))
    assert main(["export", "--model", "tiny-mvt", "--num", "1", "--out", str(tmp_path / "exp"), "--device", "cpu"]) == 0
    assert len(list((tmp_path / "exp").glob("*.glb"))) == 1
    assert main(["reconstruct", "--model", "tiny-prog", str(image), "--out", str(tmp_path / "rec"),
                 "--no-turntable", "--segmenter", "colour", "--device", "cpu"]) == 0
    assert len(list((tmp_path / "rec").glob("*.glb"))) == 1
    assert main(["invert", "--model", "tiny-mvt", str(image), "--out", str(tmp_path / "inv"), "--steps-w", "1",
                 "--steps-g", "1", "--device", "cpu"]) == 0
    assert main(["dataset", "from-generator", "--model", "tiny-mvt", "--num-shapes", "2", "--views-per-shape", "2",
                 "--out", str(tmp_path / "fg"), "--device", "cpu"]) == 0
    assert (tmp_path / "fg").is_dir()
