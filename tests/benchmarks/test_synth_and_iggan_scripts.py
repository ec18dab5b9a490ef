"""bench_synth --verify and bench_iggan's OpenGL split on CPU: the rows the GPU runs append to BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unflat.render.moderngl_backend import moderngl_available

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def test_bench_synth_times_and_verifies_the_whole_dataset():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "bench_synth.py"), "--categories", "chair", "mug",
                           "--num-shapes", "3", "--resolution", "16", "--workers", "1", "--verify", "--no-write"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = last_json(proc.stdout)
    assert row["seconds_workers_1"] > 0 and row["shapes_per_s_workers_1"] == pytest.approx(6 / row["seconds_workers_1"], rel=0.05)
    assert "6 images verified" in row["figure"]


@pytest.mark.skipif(moderngl_available() is not None, reason=f"no headless moderngl: {moderngl_available()}")
def test_bench_iggan_splits_the_opengl_draw_into_its_parts():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "bench_iggan.py"), "--preset", "tiny", "--steps", "2",
                           "--warmup", "1", "--backends", "moderngl", "--no-write"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = last_json(proc.stdout)
    parts = [row[f"gl_{p}_ms"] for p in ("prepare", "upload", "draw", "readback", "finish")]
    assert all(p >= 0 for p in parts) and sum(parts) <= row["opengl_draw_ms"] * 1.5 + 1
    assert "(host copies)" in row["figure"]  # no CUDA here: the meshes went through host memory
    assert row["faces_per_mesh"] > 0 and 0 < row["opengl_share"] < 1
