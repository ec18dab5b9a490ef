"""benchmarks/time_to_quality.py: which checkpoint stands for each time budget (the last one written by then),
and the summary and curves built from the evaluations (the GPU run itself is `bash benchmarks/time_to_quality.sh`;
`SMOKE=1` runs it end to end on CPU)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def ttq():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("time_to_quality", BENCHMARKS / "time_to_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plant(work: Path, method: str, start: float, written: dict[int, float], evals: dict[int, dict]) -> None:
    """A run whose step checkpoints were written ``written[step]`` seconds after ``start``, and evaluations."""
    ckpts = work / "runs" / method / "checkpoints"
    ckpts.mkdir(parents=True)
    (work / "runs" / f"{method}.start").write_text(f"{start}\n")
    for step, seconds in written.items():
        path = ckpts / f"step-{step:08d}.pt"
        path.write_bytes(b"x")
        os.utime(path, (start + seconds, start + seconds))
    (work / "eval").mkdir(exist_ok=True)
    for at, record in evals.items():
        (work / "eval" / f"{method}-{at}.json").write_text(json.dumps(record))


def test_each_budget_takes_the_last_checkpoint_written_by_then(ttq, tmp_path):
    _plant(tmp_path, "mv", 1000.0, {100: 25.0, 200: 55.0, 300: 95.0}, {})
    chosen = {(m, t): c.name for m, t, c in ttq.select(tmp_path, [20, 60, 100])}
    assert chosen == {("mv", 60): "step-00000200.pt", ("mv", 100): "step-00000300.pt"}  # nothing by 20 s


def test_summary_reads_the_figures_and_draws_a_curve_per_metric(ttq, tmp_path):
    record = lambda fid, cov: {"images": {"fid": fid, "kid_mean": fid / 1000}, "shapes": {"coverage": cov, "mmd": 0.1, "one_nna": 0.9}}  # noqa: E731
    _plant(tmp_path, "a", 0.0, {10: 30.0, 20: 60.0}, {30: record(300.0, 0.1), 60: record(200.0, 0.3)})
    _plant(tmp_path, "b", 0.0, {10: 59.0}, {60: record(250.0, 0.2)})
    methods = ttq.summary(tmp_path, [30, 60])
    a = methods["a"]["points"]
    assert [(p["step"], p["FID (EfficientNet-Lite0)"], p["COV"]) for p in a] == [(10, 300.0, 0.1), (20, 200.0, 0.3)]
    assert a[0]["checkpoint_s"] == pytest.approx(30.0, abs=0.1) and all(p["evaluated"] for p in a)
    assert [p["budget_s"] for p in methods["b"]["points"]] == [60]
    svg = ttq.svg_curves(methods, "FID (EfficientNet-Lite0)", True)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and ">a<" in svg and ">b<" in svg
    assert "no data" in ttq.svg_curves({"a": {"points": [{"checkpoint_s": 1, "X": None}]}}, "X", True)


def test_best_point_is_the_lowest_fid_then_the_lower_1nna_else_the_last(ttq):
    fid = ttq.FIGURES[0][0]
    points = [{fid: 50.0, "1-NNA": 0.9, "step": 1}, {fid: 40.0, "1-NNA": 0.99, "step": 2},
              {fid: 40.0, "1-NNA": 0.95, "step": 3}, {fid: None, "1-NNA": None, "step": 4}]
    best = ttq.best_point(points)
    assert best["step"] == 3 and "lowest FID" in best["picked_by"]
    assert ttq.best_point([{fid: 40.0, "1-NNA": None, "step": 1}, {fid: 40.0, "1-NNA": 0.99, "step": 2}])["step"] == 2
    # a lower FID without meshes (iggan still pre-training its proxy: no surface) loses to a point with meshes
    assert ttq.best_point([{fid: 250.0, "1-NNA": None, "step": 1}, {fid: 290.0, "1-NNA": 1.0, "step": 2}])["step"] == 2
    assert "no point has meshes" in ttq.best_point([{fid: 250.0, "1-NNA": None, "step": 1}])["picked_by"]
    unevaluated = ttq.best_point([{fid: None, "step": 1}, {fid: None, "step": 2}])
    assert unevaluated["step"] == 2 and "last" in unevaluated["picked_by"]
    assert ttq.best_point([]) is None


def test_training_clock_skips_the_gap_between_a_run_and_its_continuation(ttq, tmp_path):
    segments = [(1000.0, 1300.0), (1900.0, 2200.0)]  # 300 s, then 600 s of evaluations and a new call, then 300 s
    assert ttq.training_clock(segments, 1100.0) == 100.0
    assert ttq.training_clock(segments, 1300.0) == 300.0
    assert ttq.training_clock(segments, 2000.0) == 400.0  # 300 s of the first call + 100 s into the second
    assert ttq.training_clock(segments, 2500.0) == 600.0  # after the last process: all of it
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "m.start").write_text("1000.0\n")
    assert ttq.training_segments(tmp_path, "m") == [(1000.0, float("inf"))]  # one process, still running
    (tmp_path / "runs" / "m.segments").write_text("1000.0 1300.0\n1900.0 2200.0\n")
    assert ttq.training_segments(tmp_path, "m") == segments
