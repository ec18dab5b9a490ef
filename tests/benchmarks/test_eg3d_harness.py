"""The official-EG3D comparison harness (benchmarks/eg3d_*.py): dataset conversion against EG3D's camera
convention, the patch mechanics, the train.py driver's parsing and process control, and the summary.

Tests that need EG3D's code (.eg3d/, git-ignored, fetched from NVlabs/eg3d) skip without it.
"""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import eg3d_dataset  # noqa: E402
import eg3d_patch  # noqa: E402
import eg3d_run  # noqa: E402

from tests.conftest import write_sphere_dataset  # noqa: E402
from unflat.cameras import Cameras  # noqa: E402
from unflat.data.format import open_dataset  # noqa: E402

EG3D_SRC = ROOT / ".eg3d" / "eg3d"
needs_eg3d = pytest.mark.skipif(not (EG3D_SRC / "train.py").is_file(), reason="EG3D source not fetched into .eg3d/")


def eg3d_rays(labels: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """EG3D's RaySampler restated in NumPy: label [N,25] -> origins, unit directions [N, R*R, 3].

    Pixel (row i, column j) has uv = ((j + 0.5) / R, (i + 0.5) / R); camera-space direction
    ((u - cx) / fx, (v - cy) / fy, 1) (zero skew), mapped to the world by cam2world.
    """
    c2w = labels[:, :16].reshape(-1, 4, 4).astype(np.float64)
    k = labels[:, 16:].reshape(-1, 3, 3).astype(np.float64)
    rows, cols = np.meshgrid(np.arange(resolution), np.arange(resolution), indexing="ij")
    u, v = (cols.ravel() + 0.5) / resolution, (rows.ravel() + 0.5) / resolution
    x = (u[None] - k[:, 0, 2:3]) / k[:, 0, 0:1]
    y = (v[None] - k[:, 1, 2:3]) / k[:, 1, 1:2]
    cam = np.stack([x, y, np.ones_like(x), np.ones_like(x)], -1)  # [N, M, 4]
    world = np.einsum("nij,nmj->nmi", c2w, cam)[..., :3]
    origins = np.broadcast_to(c2w[:, None, :3, 3], world.shape)
    dirs = world - origins
    return origins, dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)


def read_zip(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("dataset.json"))
        images = {name: np.array(PIL.Image.open(io.BytesIO(archive.read(name))))
                  for name in archive.namelist() if name.endswith(".png")}
    return meta, images


def test_eg3d_zip_cameras_follow_eg3d_ray_convention(tmp_path: Path) -> None:
    src = write_sphere_dataset(tmp_path / "spheres", num_shapes=5, resolution=8)
    summary = eg3d_dataset.write_eg3d_zip(src, tmp_path / "eg3d.zip")
    data = open_dataset(src)
    meta, images = read_zip(tmp_path / "eg3d.zip")
    scale = meta["unflat"]["world_scale"]
    assert summary["images"] == 5 and scale == pytest.approx(1.7 / 2.5)  # the fixture's cameras sit at radius 2.5
    labels = dict(meta["labels"])
    names = sorted(images)
    assert names == [f"00000/img{i:08d}.png" for i in range(5)] and sorted(labels) == names
    for i, name in enumerate(names):
        assert np.array_equal(images[name], data.images[i])
    array = np.array([labels[name] for name in names], dtype=np.float32)
    assert array.shape == (5, 25)
    origins, dirs = eg3d_rays(array, 8)
    ours_o, ours_d = data.cameras.rays(8, 8)
    np.testing.assert_allclose(dirs, ours_d.numpy(), atol=1e-5)  # same rays through the same pixels
    np.testing.assert_allclose(origins, ours_o.numpy() * scale, atol=1e-5)  # in EG3D's (scaled) world
    # every camera ends up at EG3D --cfg=shapenet's distance and the unit sphere inside its box and ray range
    np.testing.assert_allclose(np.linalg.norm(origins[:, 0], axis=-1), 1.7, atol=1e-5)
    assert scale * 1.0 < 0.8 and 1.7 + scale < 2.6 and 1.7 - scale > 0.1
    back = eg3d_dataset.cameras_from_eg3d_labels(array, scale)
    torch.testing.assert_close(back.cam2world, data.cameras.cam2world, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.intrinsics, data.cameras.intrinsics, atol=1e-6, rtol=0)


def test_orbit_noise_fallback_has_valid_cameras(tmp_path: Path) -> None:
    eg3d_dataset.write_orbit_noise_zip(tmp_path / "noise.zip", 3, resolution=16)
    meta, images = read_zip(tmp_path / "noise.zip")
    labels = np.array([label for _, label in meta["labels"]], dtype=np.float32)
    assert len(images) == 3 and all(image.shape == (16, 16, 3) for image in images.values())
    cameras = eg3d_dataset.cameras_from_eg3d_labels(labels)
    assert bool(cameras.is_valid(atol=1e-4).all())
    np.testing.assert_allclose(cameras.cam2world[:, :3, 3].norm(dim=-1).numpy(), 1.7, atol=1e-5)


def test_patch_mismatch_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\nx = 1\n")
    with pytest.raises(ValueError, match="a.py: expected 1 match"):
        eg3d_patch.apply_patches(tmp_path, (eg3d_patch.Patch("a.py", "x = 1\n", "x = 2\n", "test"),))
    eg3d_patch.apply_patches(tmp_path, (eg3d_patch.Patch("a.py", "x = 1\n", "x = 2\n", "test", count=2),))
    assert (tmp_path / "a.py").read_text() == "x = 2\nx = 2\n"


@needs_eg3d
def test_patched_eg3d_reads_the_zip_and_parses_the_comparison_flags(tmp_path: Path) -> None:
    lines = eg3d_patch.patched_copy(EG3D_SRC, tmp_path / "eg3d")
    assert len(lines) == len(eg3d_patch.PATCHES)
    with pytest.raises(ValueError):  # a second pass finds nothing to patch: the copy is fully patched
        eg3d_patch.apply_patches(tmp_path / "eg3d")
    src = write_sphere_dataset(tmp_path / "spheres", num_shapes=3, resolution=128, with_depth=False)
    eg3d_dataset.write_eg3d_zip(src, tmp_path / "data.zip")
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path / 'eg3d')!r})
        import train
        from training.dataset import ImageFolderDataset
        ds = ImageFolderDataset(path={str(tmp_path / 'data.zip')!r}, use_labels=True, max_size=None, xflip=False)
        captured = {{}}
        train.launch_training = lambda c, desc, outdir, dry_run: captured.update(c)
        train.main.main(args={eg3d_run.eg3d_train_args(tmp_path / 'data.zip', tmp_path / 'runs')!r}, standalone_mode=False)
        r = captured['G_kwargs']['rendering_kwargs']
        print(json.dumps(dict(n=len(ds), res=ds.resolution, label=ds.label_shape, batch=captured['batch_size'],
                              samples=[r['depth_resolution'], r['depth_resolution_importance']],
                              sr=r['superresolution_module'], nr=captured['loss_kwargs']['neural_rendering_resolution_initial'])))
    """)
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "eg3d", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"n": 3, "res": 128, "label": [25], "batch": 32, "samples": [64, 64],
                   "sr": "training.superresolution.SuperresolutionHybrid2X", "nr": 64}


def eg3d_status_line(tick: int, kimg: float, sec_tick: float, sec_kimg: float, gpumem: float) -> str:
    """A status line built with the format specs of EG3D's training_loop.py."""
    fields = [f"tick {tick:<5d}", f"kimg {kimg:<8.1f}", f"time {'1m 05s':<12s}", f"sec/tick {sec_tick:<7.1f}",
              f"sec/kimg {sec_kimg:<7.2f}", f"maintenance {0.0:<6.1f}", f"cpumem {3.21:<6.2f}",
              f"gpumem {gpumem:<6.2f}", f"reserved {gpumem + 2:<6.2f}", f"augment {0:.3f}"]
    return " ".join(fields)


def test_parse_tick_reads_eg3d_status_lines() -> None:
    tick = eg3d_run.parse_tick(eg3d_status_line(3, 3.104, 24.6, 24.02, 61.5))
    assert tick == {"tick": 3, "kimg": 3.1, "sec_tick": 24.6, "sec_kimg": 24.02, "maintenance": 0.0, "cpumem": 3.21,
                    "gpumem": 61.5, "reserved": 63.5}
    assert eg3d_run.parse_tick("Setting up PyTorch plugin ...") is None


FAKE_TRAIN = """
import json, os, subprocess, sys, time
# stands in for EG3D's train.py: a long-lived child (like a DataLoader worker), the plugin lines, status lines
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open("pids.txt", "w").write(f"{os.getpid()} {child.pid}")
tf32, snaps = os.environ["EG3D_BENCH_TF32"], os.environ["EG3D_BENCH_NO_SNAPSHOTS"]
print(f"args {' '.join(sys.argv[1:])} tf32={tf32} no_snapshots={snaps}", flush=True)
for op in ("bias_act", "upfirdn2d"):
    print(f"EG3D_BENCH plugin loaded: torch_utils.ops.{op} -> /x/{op}_plugin.so", flush=True)
for line in json.loads(LINES):
    print(line, flush=True)
    time.sleep(0.05)
time.sleep(600)
"""


def test_train_driver_stops_train_py_after_the_timed_ticks(tmp_path: Path) -> None:
    eg3d = tmp_path / "eg3d"
    eg3d.mkdir()
    speeds = [90.0, 30.0, 24.0, 26.0] + [99.0] * 6  # ticks 0-1 untimed, 2-3 timed, later ones must not be reached
    lines = [eg3d_status_line(t, t * 1.024, 25.0, s, 60.0 + t) for t, s in enumerate(speeds)]
    (eg3d / "train.py").write_text(f"LINES = {json.dumps(json.dumps(lines))}\n" + FAKE_TRAIN)
    log, result = tmp_path / "train.log", tmp_path / "result.json"
    rc = eg3d_run.run_train(eg3d, tmp_path / "d.zip", tmp_path / "runs", log, result, tf32=True, skip=2, timed=2,
                            batch=32, workers=3)
    record = json.loads(result.read_text())
    assert rc == 0 and record["ok"], record
    assert record["timed_ticks"] == [2, 3] and record["s_per_kimg"] == 25.0 and record["images_per_s"] == 40.0
    assert record["peak_memory_gb"] == 63.0 and record["peak_reserved_gb"] == 65.0
    assert set(record["plugins"]) == {"torch_utils.ops.bias_act", "torch_utils.ops.upfirdn2d"}
    assert "tf32=1 no_snapshots=1" in log.read_text() and "--cfg=shapenet" in log.read_text()
    for pid in map(int, (eg3d / "pids.txt").read_text().split()):  # train.py and its child are gone
        assert not running(pid), pid


def running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an orphan's exit is reaped by init, maybe later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_train_driver_reports_missing_plugins(tmp_path: Path) -> None:
    eg3d = tmp_path / "eg3d"
    eg3d.mkdir()
    (eg3d / "train.py").write_text("print('Setting up PyTorch plugin \"bias_act_plugin\"... Failed!')\nraise SystemExit(1)\n")
    rc = eg3d_run.run_train(eg3d, tmp_path / "d.zip", tmp_path / "runs", tmp_path / "t.log", tmp_path / "r.json",
                            tf32=False, skip=2, timed=2, batch=32, workers=3)
    record = json.loads((tmp_path / "r.json").read_text())
    assert rc == 1 and not record["ok"] and "not confirmed loaded" in record["error"]


def test_summary_combines_both_sides(tmp_path: Path) -> None:
    (tmp_path / "eg3d_default.json").write_text(json.dumps({"ok": True, "images_per_s": 40.0, "peak_memory_gb": 60.0}))
    (tmp_path / "eg3d_tf32.json").write_text(json.dumps({"ok": False, "error": "EG3D setup failed"}))
    row = {"images_per_s": 50.0, "peak_memory_gb": 20.0, "device": "GPU X"}
    (tmp_path / "ours_compiled.log").write_text("compiling...\n" + json.dumps(row) + "\n")
    summary = eg3d_run.summarise(tmp_path, write=False)
    assert summary["ratios"]["unflat_compiled/eg3d_default"] == 1.25
    assert summary["ratios"]["unflat_compiled/eg3d_tf32"] is None and summary["unflat"]["eager"] is None


def test_train_driver_takes_train_py_down_when_it_is_stopped(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    eg3d = tmp_path / "eg3d"
    eg3d.mkdir()
    lines = [eg3d_status_line(0, 0.032, 9.0, 280.0, 50.0)]  # one tick, then train.py hangs
    (eg3d / "train.py").write_text(f"LINES = {json.dumps(json.dumps(lines))}\n" + FAKE_TRAIN)
    result = tmp_path / "r.json"
    driver = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "eg3d_run.py"), "train", "--eg3d", str(eg3d),
                               "--data", "d.zip", "--outdir", str(tmp_path), "--log", str(tmp_path / "t.log"),
                               "--json", str(result)], stdout=subprocess.PIPE, text=True)
    log, deadline = tmp_path / "t.log", time.time() + 30
    while not (log.exists() and "tick 0" in log.read_text(errors="replace")):
        assert time.time() < deadline, "fake train.py did not print its first tick"
        time.sleep(0.1)
    driver.send_signal(signal.SIGTERM)  # what `timeout` does
    assert driver.wait(20) == 124
    record = json.loads(result.read_text())
    assert not record["ok"] and "stopped by signal" in record["error"] and len(record["ticks"]) == 1
    for pid in map(int, (eg3d / "pids.txt").read_text().split()):
        assert not running(pid), pid
