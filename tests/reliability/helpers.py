"""Shared helpers of the reliability tests: flatten checkpoints for bitwise comparison, call the CLI
in-process and check that an error is one line that names the file, import the engine's toy method."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
ENGINE_TESTS = REPO / "tests" / "engine"


def toy_spec():
    """The engine's toy GAN (tests/engine/toy_method.py), imported the way tests/engine does so it registers once."""
    if str(ENGINE_TESTS) not in sys.path:
        sys.path.insert(0, str(ENGINE_TESTS))
    from toy_method import SPEC  # noqa: PLC0415

    return SPEC


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested checkpoint payload, keyed by its path ('method_state/networks/G/0.weight')."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}/{key}" if prefix else str(key)))
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def assert_payloads_equal(a: dict, b: dict, ignore: tuple[str, ...] = ()) -> int:
    """Bitwise equality of two checkpoint payloads (tensors: dtype, shape and every bit). Returns the tensor count."""
    fa, fb = flatten(a), flatten(b)
    fa = {k: v for k, v in fa.items() if not k.startswith(ignore)}
    fb = {k: v for k, v in fb.items() if not k.startswith(ignore)}
    assert fa.keys() == fb.keys(), sorted(set(fa) ^ set(fb))[:10]
    tensors = 0
    for key in fa:
        x, y = fa[key], fb[key]
        if isinstance(x, torch.Tensor):
            tensors += 1
            assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape, key
            # compare bits, so NaN == NaN and -0.0 != 0.0
            assert torch.equal(_bits(x), _bits(y)), key
        else:
            assert x == y, (key, x, y)
    return tensors


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8) if t.dtype != torch.bool else t


def cli_error(capsys, argv: list[str]) -> tuple[int, str]:
    """Run `unflat ARGV` in-process; return (exit code, stderr stripped) with stdout discarded."""
    from unflat import cli

    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code: int, err: str, *must_contain: str) -> None:
    """A user error: non-zero exit, no traceback, and exactly one `unflat CMD: error: ...` line on stderr
    (progress lines of a run that failed part-way may precede it) naming what it must name."""
    assert code != 0, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("unflat ") and ": error: " in line]
    assert len(errors) == 1, err
    assert errors[0] == err.splitlines()[-1], err  # nothing after it
    for text in must_contain:
        assert text in errors[0], (text, errors[0])


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(ENGINE_TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env.setdefault("PYOPENGL_PLATFORM", "osmesa")
    return env
