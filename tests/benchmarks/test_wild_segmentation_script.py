"""bench_wild_segmentation on CPU at a tiny size: one JSON row with an IoU per background kind and category."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_wild_segmentation_scores_every_kind_and_category():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "bench_wild_segmentation.py"), "--num-shapes", "1",
                           "--resolution", "32", "--methods", "colour", "--no-write"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    for kind in ("photos", "procedural"):
        assert 0 <= row[f"colour_{kind}_iou_mean"] <= 1
        per_category = [row[f"colour_{kind}_{c}"] for c in ("chair", "table", "sofa", "mug", "car", "lamp")]
        assert abs(sum(per_category) / 6 - row[f"colour_{kind}_iou_mean"]) < 1e-2  # one image per category
    assert "colour on photos" in row["figure"]
