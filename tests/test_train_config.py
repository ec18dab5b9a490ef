"""`unflat train --config FILE.yaml`: a run's config.yaml trains again as it is (bit for bit on CPU), flags
override the file, a partial file sits on top of the preset, and a bad file is a one-line error."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from unflat import cli
from unflat.config import config_from_yaml, replace_fields, run_config_text
from unflat.methods.registry import get_method

pytestmark = pytest.mark.usefixtures("one_thread")
TIMINGS = ("time", "steps_per_s", "images_per_s")


def _tensors(tree, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a nested checkpoint state, by its path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    found: dict[str, torch.Tensor] = {}
    for key, value in items:
        found |= _tensors(value, f"{prefix}/{key}")
    return found


def _logged(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def test_a_runs_config_yaml_trains_the_same_run_again(sphere_dataset: Path, tmp_path: Path):
    first, again = tmp_path / "first", tmp_path / "again"
    # flags that are not the preset's: only the saved file can carry them into the second run
    assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(sphere_dataset), "--out", str(first),
                     "--device", "cpu", "--max-steps", "2", "--log-every", "1", "--seed", "3", "--generator.lr", "0.004"]) == 0
    assert cli.main(["train", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0

    saved = (first / "config.yaml").read_text().replace(f"out: {first}", f"out: {again}")
    assert (again / "config.yaml").read_text() == saved
    a = torch.load(first / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(again / "checkpoints" / "latest.pt", weights_only=True)
    ta, tb = _tensors(a["method_state"]), _tensors(b["method_state"])
    assert a["step"] == b["step"] == 2 and ta.keys() == tb.keys() and len(ta) > 100
    different = [key for key in ta if not torch.equal(ta[key], tb[key])]
    assert not different, f"differ after 2 steps: {different[:5]}"
    losses = _logged(first)
    assert losses == _logged(again) and len(losses) == 2 and any(k.startswith("loss/") for k in losses[0])


def test_flags_override_the_file_and_a_partial_file_sits_on_the_preset(tmp_path: Path):
    spec = get_method("mvtriplane")
    saved = replace(spec.config("tiny"), seed=3, max_steps=5)
    run_file = tmp_path / "config.yaml"
    run_file.write_text(run_config_text("mvtriplane", saved))
    found, cfg = cli.train_config(["--config", str(run_file), "--max-steps", "7"])
    assert found is spec and cfg == replace(config_from_yaml(spec.config_cls, run_file.read_text()), max_steps=7)

    partial = tmp_path / "arm.yaml"
    partial.write_text("method: mvtriplane\nseed: 5\nmultiview:\n  views: 2\n")
    _, cfg = cli.train_config(["--config", str(partial), "--preset", "tiny", "--batch-size", "3"])
    assert cfg == replace_fields(spec.config("tiny"), {"seed": 5, "multiview.views": 2, "batch_size": 3})
    _, cfg = cli.train_config(["mvtriplane", f"--config={partial}"])  # METHOD given too, preset small
    assert cfg == replace_fields(spec.config("small"), {"seed": 5, "multiview.views": 2})
    # a partial group keeps the preset's other values in that group; dotted keys and flags name the same fields
    partial.write_text("method: mvtriplane\ndiscriminator.lr: 0.01\ngenerator:\n  channel_max: 32\n")
    _, cfg = cli.train_config(["--config", str(partial), "--preset", "tiny", "--generator.z-dim", "8"])
    assert cfg == replace_fields(spec.config("tiny"), {"discriminator.lr": 0.01, "generator.channel_max": 32,
                                                       "generator.z_dim": 8})


@pytest.mark.parametrize("text, args, message", [
    ("seed: 5\n", [], "names no method"),
    ("[1, 2\n", ["mvtriplane"], "not valid YAML (line 2)"),
    ("- 1\n", ["mvtriplane"], "must be a mapping"),
    ("nope: 1\n", ["mvtriplane"], "--nope: is not a field of MVTriplaneConfig"),
    ("seed: five\n", ["mvtriplane"], "--seed: must be a int"),
    ("method: mvtriplane\n", ["iggan"], "is a 'mvtriplane' config, not 'iggan'"),
    ("generator:\n  lr: .nan\n", ["mvtriplane"], "--generator.lr: must be a finite number"),
    ("camera_radius: .inf\n", ["mvtriplane"], "--cameras.radius: must be a finite number"),  # an old flat name
    ("generator:\n  nope: 1\n", ["mvtriplane"], "--generator.nope: is not a field of TriplaneGeneratorConfig"),
    ("generator: 3\n", ["mvtriplane"], "--generator: must be a mapping of TriplaneGeneratorConfig fields"),
])
def test_a_bad_config_file_is_a_one_line_error(tmp_path: Path, capsys, text: str, args: list[str], message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert cli.main(["train", *args, "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and str(path) in err
    assert cli.main(["train", "mvtriplane", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "no such file" in capsys.readouterr().err
