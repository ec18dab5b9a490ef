"""The `unflat` command itself: help for every sub-command, errors as one line, the console script."""

from __future__ import annotations

import subprocess
import sys

import pytest

from unflat import cli


def test_top_level_help_lists_every_command(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", ["generate", "export", "invert", "reconstruct"])
def test_run_commands_explain_every_option(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--out" in out and "--device" in out


def test_unknown_command_and_missing_run_are_one_line_errors(tmp_path, capsys) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err
    code = cli.main(["generate", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "nope" in err


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "unflat", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip()


def test_train_help_groups_a_methods_flags_by_component(capsys) -> None:
    """`unflat train 3dgp --help`: one section per component, dotted flags, no field that 3dgp does not use."""
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "3dgp", "--preset", "tiny", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for group in ("generator", "rendering", "cameras", "discriminator", "regularisation", "export", "depth",
                  "camera-generator", "distillation", "patches", "explosion"):
        assert f"{group} options" in text, group
    assert "--discriminator.channel-base" in text and "--camera-generator.z-dim" in text
    assert "(default: 64)" in text.split("--discriminator.channel-base", 1)[1][:200]  # the tiny preset's value
    assert "perturb" not in text and "--d-channel-base" not in text


def test_iggan_help_groups_its_flags_by_component(capsys) -> None:
    """`unflat train iggan --help`: the paper's parts (generator, OpenGL, proxy renderer, discriminator, views,
    export) as sections; the proxy's pre-training run shares the renderer and OpenGL sections."""
    with pytest.raises(SystemExit):
        cli.main(["train", "iggan", "--preset", "tiny", "--help"])
    text = capsys.readouterr().out
    for group in ("generator", "renderer", "rendering", "discriminator", "cameras", "export"):
        assert f"{group} options" in text, group
    assert "--renderer.dom-weight" in text and "--discriminator.mask-real-images" in text
    assert "(default: 16)" in text.split("--renderer.channels-2d", 1)[1][:200]  # the tiny preset's value
    assert "--dom-weight" not in text and "--g-max-channels" not in text and "--export-threshold" not in text
    with pytest.raises(SystemExit):
        cli.main(["train", "iggan-renderer", "--help"])
    text = capsys.readouterr().out
    assert all(f"{group} options" in text for group in ("renderer", "rendering", "cameras"))
    assert "--cameras.radius" in text and "mask-real-images" not in text and "--renderer.dom-weight" not in text


def test_progressive_help_groups_its_flags_by_component(capsys) -> None:
    """`unflat train progressive --help`: encoder, decoder, template, discriminator, rendering, losses, schedule and
    augmentation as sections, with the preset's values."""
    with pytest.raises(SystemExit):
        cli.main(["train", "progressive", "--preset", "tiny", "--help"])
    text = capsys.readouterr().out
    for group in ("encoder", "decoder", "template", "discriminator", "rendering", "losses", "schedule", "augmentation"):
        assert f"{group} options" in text, group
    assert "--schedule.stage2-start" in text and "--losses.perceptual-features" in text
    assert "(default: 4)" in text.split("--encoder.channels", 1)[1][:200]  # the tiny preset's value
    assert "--stage2-start" not in text and "--encoder-channels" not in text and "--augment-background" not in text
