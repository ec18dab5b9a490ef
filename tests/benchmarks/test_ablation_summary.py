"""benchmarks/ablation_summary.py report: the tables the GPU ablation calls bring back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _arm(root: Path, arm: str, seed: int, fid: float | None, complete: bool = True, steps: int = 600) -> None:
    (root / arm).mkdir(parents=True)
    metrics = {"step": steps, "fid": fid, "kid": 0.1, "coverage": 0.25, "mmd": 0.04, "one_nna": 1.0,
               "backbone": "unflat-domain-resnet-64px-128d", "backbone_weights": "abc", "complete": complete}
    summary = {"method": "iggan", "arm": arm, "steps_target": 600, "steps_reached": steps, "train_steps_per_s": 8.0,
               "train_wall_s": 70, "eval_wall_s": 15, "metrics": metrics, "inversion": None, "bench": None,
               "commands": [f"timeout -s INT 115 python3 -m unflat train iggan --max-steps 600 --seed {seed} --out x"]}
    (root / arm / "summary.json").write_text(json.dumps(summary))


def _report(root: Path, arms: list[str]) -> str:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "ablation_summary.py"), "report", str(root), "--method",
                           "iggan", "--arms", *arms, "--labels", "dom=DOM weight 100"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_seeded_arms_get_fid_per_seed_mean_and_wins(tmp_path):
    _arm(tmp_path, "dom", 0, 13.0)            # the unsuffixed arm: its seed comes from its training command
    _arm(tmp_path, "nodom", 0, 23.0)
    _arm(tmp_path, "dom-s2", 2, 66.0)
    _arm(tmp_path, "nodom-s2", 2, 31.0)
    _arm(tmp_path, "dom-s3", 3, 71.0)
    _arm(tmp_path, "nodom-s3", 3, 20.0, steps=400)  # stopped short: not equal budget, left out of the comparison
    out = _report(tmp_path, ["dom", "nodom", "dom-s2", "nodom-s2", "dom-s3", "nodom-s3"])
    table = out[out.index("#### FID per seed"):]
    assert "| arm | seed 0 | seed 2 | seed 3 | mean | best in |" in table
    dom = next(line for line in table.splitlines() if line.startswith("| dom |"))
    nodom = next(line for line in table.splitlines() if line.startswith("| nodom |"))
    assert dom == "| dom | 13 | 66 | 71 | 50 | 1 of 2 seeds |"
    assert nodom == "| nodom | 23 | 31 | - | 27 | 1 of 2 seeds |"
    assert "400/600 (short)" in out


def test_an_evaluation_cut_short_is_marked_and_no_seed_table_without_seeded_arms(tmp_path):
    _arm(tmp_path, "dom", 0, None, complete=False)
    _arm(tmp_path, "nodom", 0, 20.0)
    out = _report(tmp_path, ["dom", "nodom"])
    dom = next(line for line in out.splitlines() if line.startswith("| DOM weight 100 |"))
    assert dom.endswith("| 15 (cut short) |") and "| - |" in dom
    assert "FID per seed" not in out
