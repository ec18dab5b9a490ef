"""Shared benchmark plumbing: device description, timing with CUDA sync, one JSON line + a row in the history
(benchmarks/results/history.json), from which BENCHMARKS.md is regenerated."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

from write_benchmarks_md import BENCHMARKS_MD, load_rows, render  # next to this file

HISTORY = Path(__file__).resolve().parent / "results" / "history.json"


def device_name(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cores = len(os.sched_getaffinity(0))
    return f"CPU {platform.processor() or platform.machine()}, {cores} cores (torch {torch.__version__})"


def load_note() -> str:
    """" (machine busy: ...)" when other processes competed for the CPU during the run, else ""."""
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    return f" (machine busy: load avg {load:.1f} on {cores} cores)" if load > cores + 0.5 else ""


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device | str, repeats: int, warmup: int = 1) -> float:
    """Seconds per call of fn(), after warm-up, with device synchronisation."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def report(what: str, figure: str, device: str, record: dict, write: bool = True, command: str | None = None) -> None:
    """Print one JSON line, append it to the history and regenerate BENCHMARKS.md (``command``: what reproduces it;
    default this script)."""
    command = command or "python " + " ".join([Path(sys.argv[0]).as_posix().split("/main/")[-1], *sys.argv[1:]])
    row = {"what": what, "command": command, "device": device, "date": date.today().isoformat(), "figure": figure, **record}
    print(json.dumps(row), flush=True)
    if not write:
        return
    append_row(row)


def append_row(row: dict, history: Path = HISTORY, out: Path = BENCHMARKS_MD) -> None:
    """Add ``row`` to the history file (a JSON list, rewritten atomically) and regenerate ``out`` from the history's
    folder."""
    rows = json.loads(history.read_text()) if history.exists() else []
    rows.append(row)
    tmp = history.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(history)
    out.write_text(render(load_rows(history.parent)))
