"""The tri-plane performance scripts on CPU: the profiler summary (categories, top ops, trace) and the
largest-batch search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def test_profile_summary_attributes_the_step_to_categories(tmp_path):
    out = tmp_path / "profile"
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "profile_triplane.py"), "--preset", "tiny", "--device", "cpu",
                           "--steps", "2", "--warmup", "1", "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "profile_summary.json").read_text())
    categories = {c["category"]: c["percent"] for c in summary["categories"]}
    for expected in ("plane sampling fwd", "plane sampling bwd", "decoder MLP fwd", "decoder MLP bwd",
                     "volume compositing fwd", "importance sampling fwd", "StyleGAN synthesis fwd",
                     "StyleGAN synthesis bwd", "super-resolution fwd", "discriminator fwd", "discriminator bwd",
                     "optimizer fwd"):
        assert categories.get(expected, 0) > 0, expected
    assert sum(categories.values()) == pytest.approx(100, abs=0.1)
    assert categories.get("other fwd", 0) + categories.get("other bwd", 0) < 40  # most of the step is attributed
    top = summary["top_ops"]
    assert len(top) >= 25 and top[0]["ms_per_step"] >= top[-1]["ms_per_step"]
    assert any(op["op"] == "aten::grid_sampler_2d_backward" and op["category"] == "plane sampling bwd" for op in top)
    text = (out / "profile_summary.txt").read_text()
    assert "plane sampling bwd" in text and "top 25 ops" in text
    assert (out / "trace.json.gz").stat().st_size > 1000


def test_max_batch_search_finds_the_largest_fitting_multiple_of_eight(monkeypatch, capsys):
    import bench_triplane

    probed = []

    def fake_fits(cfg, args, device, batch):  # a GPU on which batches up to 77 fit
        probed.append(batch)
        return batch <= 77

    monkeypatch.setattr(bench_triplane, "fits", fake_fits)
    args = bench_triplane.build_parser().parse_args(["--preset", "tiny", "--device", "cpu", "--no-write", "--max-batch",
                                                     "--batch", "32"])
    bench_triplane.max_batch(bench_triplane.build_config(args), args, bench_triplane.setup_device(args))
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["max_batch"] == 72 and row["first_failing"] == 80
    assert probed[:3] == [32, 64, 128] and len(probed) <= 7
