"""BENCHMARKS.md is generated from benchmarks/results/*.json: the committed file is what the JSON gives, each
benchmark (what, device) appears once with its latest figure, and a new report lands in the history and the page."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import common  # noqa: E402
import write_benchmarks_md as wbm  # noqa: E402


def _row(what: str, day: str, figure: str, device: str = "CPU x86_64, 2 cores (torch 2.13.0+cpu)") -> dict:
    return {"what": what, "command": f"python benchmarks/bench_{what}.py", "device": device, "date": day, "figure": figure}


def test_the_committed_page_is_generated_from_the_committed_json():
    assert wbm.main(["--check"]) == 0, "run python benchmarks/write_benchmarks_md.py after editing the history"
    rows = wbm.load_rows()
    keys = [wbm.benchmark_key(r) for r, _ in wbm.latest(rows)]
    assert len(keys) == len(set(keys)) and 0 < len(keys) <= len(rows)
    table_rows = [line for line in wbm.BENCHMARKS_MD.read_text().splitlines() if line.startswith("| ") and
                  not line.startswith("| what |")]
    assert len(table_rows) == len(keys)


def test_latest_figure_per_benchmark_with_the_count_of_earlier_ones(tmp_path: Path):
    rows = [_row("loader", "2026-11-25", "10 images/s"), _row("synth", "2026-11-25", "3 shapes/s"),
            _row("loader", "2026-11-26", "12 images/s"),
            _row("loader", "2026-11-24", "99 images/s"),  # appended later, measured earlier: not the latest
            {**_row("loader", "2026-11-25", "20 images/s"), "device": "CPU x86_64, 2 cores (torch 2.13.0+cpu), load avg 3.1"},
            _row("loader", "2026-11-27", "5000 images/s", device="NVIDIA H200 (torch 2.11.0+cu130)")]
    (tmp_path / "history.json").write_text(json.dumps(rows))
    (tmp_path / "other.json").write_text(json.dumps({"not": "rows"}))  # other result files are left alone
    out = tmp_path / "BENCHMARKS.md"
    assert wbm.main(["--results", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    cpu, gpu = text.split("## GPU")
    assert "12 images/s (3 earlier figures in the history)" in cpu and "| 3 shapes/s |" in cpu
    assert "10 images/s" not in text and "99 images/s" not in text and "20 images/s" not in text
    assert "5000 images/s |" in gpu and cpu.index("loader") < cpu.index("synth")
    assert wbm.main(["--check", "--results", str(tmp_path), "--out", str(out)]) == 0
    out.write_text(text + "| hand-added | x | y | z | w |\n")
    assert wbm.main(["--check", "--results", str(tmp_path), "--out", str(out)]) == 1


def test_a_report_lands_in_the_history_and_the_page(tmp_path: Path):
    history, out = tmp_path / "history.json", tmp_path / "BENCHMARKS.md"
    history.write_text(json.dumps([_row("loader", "2026-11-25", "10 images/s")]))
    common.append_row({**_row("loader", "2026-11-26", "11 images/s"), "images_per_s": 11.0}, history, out)
    assert [r["figure"] for r in json.loads(history.read_text())] == ["10 images/s", "11 images/s"]
    assert "11 images/s (1 earlier figure in the history)" in out.read_text()


def test_a_device_runs_new_rows_come_back_as_json_lines_and_append(tmp_path: Path, capsys):
    history, out = tmp_path / "history.json", tmp_path / "BENCHMARKS.md"
    history.write_text(json.dumps([_row("loader", "2026-11-25", "10 images/s")]))
    args = ["--results", str(tmp_path), "--out", str(out)]
    assert wbm.main([*args, "--count"]) == 0 and capsys.readouterr().out.strip() == "1"
    common.append_row(_row("synth", "2026-11-26", "4 shapes/s"), history, out)  # what a GPU run adds
    assert wbm.main([*args, "--since", "1"]) == 0
    new_rows = tmp_path / "new_rows.jsonl"
    new_rows.write_text(capsys.readouterr().out)
    assert [json.loads(line)["figure"] for line in new_rows.read_text().splitlines()] == ["4 shapes/s"]

    elsewhere = tmp_path / "checkout"
    elsewhere.mkdir()
    (elsewhere / "history.json").write_text(json.dumps([_row("loader", "2026-11-25", "10 images/s")]))
    assert wbm.main(["--results", str(elsewhere), "--out", str(elsewhere / "B.md"), "--append", str(new_rows)]) == 0
    assert "| 4 shapes/s |" in (elsewhere / "B.md").read_text()
    (tmp_path / "junk.jsonl").write_text('{"what": "x"}\n')
    assert wbm.main(["--results", str(elsewhere), "--out", str(elsewhere / "B.md"), "--append", str(tmp_path / "junk.jsonl")]) == 1
