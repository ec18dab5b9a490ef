"""benchmarks/wild_report.py: what each arm name of benchmarks/ablation_wild.sh means, and the wild/clean ratios
it reports (the GPU run itself is `bash benchmarks/ablation_wild.sh device`; `SMOKE=1` runs it on CPU)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("wild_report", BENCHMARKS / "wild_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arm_names_parse_to_method_data_variant_and_seed(report):
    assert report.parse_arm("mv-clean") == {"method": "mvtriplane", "data": "clean", "variant": "full", "seed": 0}
    assert report.parse_arm("tdgp-wild-nodistill-s1") == {"method": "3dgp", "data": "wild", "variant": "nodistill", "seed": 1}
    assert report.parse_arm("mv-wild-noblob")["variant"] == "noblob"
    assert report.parse_arm("mv-wild-bg8")["variant"] == "bg8"
    with pytest.raises(SystemExit):
        report.parse_arm("mv-wild-nonsense")


def _arm(root: Path, name: str, mmd: float | None) -> None:
    (root / name).mkdir(parents=True)
    metrics = {"mmd": mmd, "coverage": 0.5, "one_nna": 0.9, "fid": 100.0} if mmd is not None else {"fid": 120.0}
    (root / name / "summary.json").write_text(json.dumps({"metrics": metrics, "steps_reached": 10, "train_wall_s": 5.0}))


def test_ratios_use_the_full_seed0_arms_and_name_the_arm_without_the_blob(report, tmp_path):
    _arm(tmp_path, "mv-clean", 0.04)
    _arm(tmp_path, "mv-wild", 0.06)
    _arm(tmp_path, "mv-wild-noblob", None)  # no surface: no shape metrics
    out = tmp_path / "wild.json"
    subprocess.run([sys.executable, str(BENCHMARKS / "wild_report.py"), str(tmp_path), "--arms", "mv-clean", "mv-wild",
                    "mv-wild-noblob", "--out", str(out)], check=True, capture_output=True)
    ratios = json.loads(out.read_text())["wild_over_clean_mmd"]
    assert ratios["mvtriplane"]["wild_over_clean"] == pytest.approx(1.5)
    assert ratios["mvtriplane without the density blob"]["wild_over_clean"] is None
    assert ratios["3dgp"]["wild_over_clean"] is None
