"""Log lines written to a file or pipe keep their full length (rich would wrap them at 80 columns)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_console_lines_are_not_wrapped_when_stderr_is_a_pipe() -> None:
    code = "from unflat.engine.progress import console; console.print('step 1/9 ' + 'metric=1.0 ' * 20)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 1 and len(lines[0]) > 200, proc.stderr
