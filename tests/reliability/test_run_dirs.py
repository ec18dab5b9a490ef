"""Run directories: a checkpoint outside a run never makes its folder a run, a user's folder is never a run
directory, one training per run directory (a lock, released however the process ends), a second SIGINT/SIGTERM
ends the process even when a step never returns, and a batch larger than the data is refused before any work.

Each test plants what a user has (their own config.yaml next to a checkpoint, a second training, another
writer's temporary file) and checks nothing of it is replaced, deleted or reused."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import assert_one_line_error, cli_error, subprocess_env, toy_spec
from unflat.engine import checkpoint as ckpt
from unflat.engine.runlock import RunLock
from unflat.runs import load_run

SPEC = toy_spec()
SCRIPT = Path(__file__).with_name("toy_cli.py")


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "toy", "--preset", "tiny", "--data", str(data), "--out", str(out), "--device", "cpu", *extra]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def trained(sphere_dataset: Path, tmp_path: Path, capsys) -> Path:
    run = tmp_path / "run"
    assert cli_error(capsys, _train_args(sphere_dataset, run, "--max-steps", "3"))[0] == 0
    return run


@pytest.fixture
def loose_checkpoint(trained: Path, tmp_path: Path) -> Path:
    """DIR/weights/mv.pt: a checkpoint copied out of its run, next to the user's own config.yaml and notes."""
    folder = tmp_path / "DIR"
    (folder / "weights").mkdir(parents=True)
    shutil.copyfile(trained / "checkpoints" / "latest.pt", folder / "weights" / "mv.pt")
    (folder / "config.yaml").write_text("my: own config\n")
    (folder / "notes.txt").write_text("do not touch")
    return folder / "weights" / "mv.pt"


# ---- resume / generate from a checkpoint outside a run directory ------------------------------
def test_resume_from_a_file_outside_a_run_writes_nothing(loose_checkpoint: Path, capsys) -> None:
    folder = loose_checkpoint.parents[1]
    before = _snapshot(folder)
    code, err = cli_error(capsys, ["train", "--resume", str(loose_checkpoint), "--max-steps", "5"])
    assert_one_line_error(code, err, str(loose_checkpoint), "not inside a run directory", "--out NEW_RUN")
    assert _snapshot(folder) == before  # the user's config.yaml is not replaced, no run.log/checkpoints/ appear


def test_resume_by_a_relative_file_name_is_one_line(loose_checkpoint: Path, capsys, monkeypatch) -> None:
    """`unflat train --resume mv.pt` from the checkpoint's folder: IndexError in Path.parents[1] before."""
    monkeypatch.chdir(loose_checkpoint.parent)
    before = _snapshot(loose_checkpoint.parents[1])
    code, err = cli_error(capsys, ["train", "--resume", "mv.pt"])
    assert_one_line_error(code, err, "mv.pt", "not inside a run directory")
    assert _snapshot(loose_checkpoint.parents[1]) == before


def test_resume_from_a_file_into_a_new_run_directory(loose_checkpoint: Path, trained: Path, tmp_path: Path, capsys) -> None:
    folder = loose_checkpoint.parents[1]
    before = _snapshot(folder)
    new = tmp_path / "continued"
    assert cli_error(capsys, ["train", "--resume", str(loose_checkpoint), "--out", str(new), "--max-steps", "5"])[0] == 0
    assert _snapshot(folder) == before
    payload = ckpt.load_checkpoint(new)
    assert payload["step"] == 5 and (new / "config.yaml").is_file() and (new / "run.log").is_file()
    assert ckpt.load_checkpoint(trained)["step"] == 3  # the original run is untouched
    # the new directory is a run now: resuming it again by its folder works, a second --out into it is refused
    code, err = cli_error(capsys, ["train", "--resume", str(loose_checkpoint), "--out", str(new), "--max-steps", "6"])
    assert_one_line_error(code, err, str(new), "already holds a trained run")


def test_resume_into_a_user_folder_is_refused(loose_checkpoint: Path, tmp_path: Path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own config\n")
    code, err = cli_error(capsys, ["train", "--resume", str(loose_checkpoint), "--out", str(mine)])
    assert_one_line_error(code, err, str(mine), "not an unflat run directory")
    assert sorted(p.name for p in mine.iterdir()) == ["config.yaml"]
    assert (mine / "config.yaml").read_text() == "my: own config\n"


def test_relative_checkpoint_inside_its_run_resolves_to_the_run(trained: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(trained / "checkpoints")
    assert ckpt.run_dir_of(Path("latest.pt")).resolve() == trained.resolve()
    assert load_run(Path("latest.pt"), "cpu").run_dir.resolve() == trained.resolve()
    code, err = cli_error(capsys, ["generate", "latest.pt", "--device", "cpu", "--out", str(trained.parent / "gen")])
    assert_one_line_error(code, err, "does not support generate")  # the toy has no generate: a line, not IndexError
    assert ckpt.run_dir_of(trained / "checkpoints" / "latest.pt") == trained


def test_generate_from_a_relative_loose_checkpoint_is_not_a_traceback(loose_checkpoint: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(loose_checkpoint.parent)
    code, err = cli_error(capsys, ["generate", "mv.pt", "--device", "cpu", "--out", "../gen"])
    assert_one_line_error(code, err, "does not support generate")


def test_new_run_into_a_user_folder_is_refused(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own config\n")
    before = _snapshot(mine)
    code, err = cli_error(capsys, _train_args(sphere_dataset, mine))
    assert_one_line_error(code, err, str(mine), "not an unflat run directory", "choose a new --out")
    assert _snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ["config.yaml"]


# ---- one training per run directory ------------------------------------------------------------
def test_second_training_into_a_locked_run_is_refused_naming_the_pid(trained: Path, sphere_dataset: Path, capsys) -> None:
    before = _snapshot(trained)
    lock = RunLock(trained).acquire()  # as another process holds it (flock is per open file, so this works in-process)
    try:
        for argv in (["train", "--resume", str(trained), "--max-steps", "6"], _train_args(sphere_dataset, trained)):
            code, err = cli_error(capsys, argv)
            assert_one_line_error(code, err, str(trained), f"PID {os.getpid()}", "another unflat process")
    finally:
        lock.release()
    assert {k: v for k, v in _snapshot(trained).items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}
    assert cli_error(capsys, ["train", "--resume", str(trained), "--max-steps", "4"])[0] == 0  # released: works


def test_two_real_trainings_into_one_run_directory(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    """A real `unflat train` process trains; a second `--out SAME` and `--resume SAME` are refused with its PID;
    when it ends (killed with -9: the kernel drops the flock) the run can be resumed."""
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, str(SCRIPT), *_train_args(sphere_dataset, run, "--max-steps", "1000")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env() | {"UNFLAT_TEST_STEP_SLEEP": "0.05"})
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not (run / "metrics.jsonl").exists() and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        assert (run / ".lock").read_text().strip() == str(first.pid)
        for argv in (_train_args(sphere_dataset, run), ["train", "--resume", str(run)]):
            code, err = cli_error(capsys, argv)
            assert_one_line_error(code, err, str(run), f"PID {first.pid}")
        assert first.poll() is None  # the first one is not disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        first.stderr.close()
    assert cli_error(capsys, ["train", "--resume", str(run), "--max-steps", str(ckpt.load_checkpoint(run)["step"] + 1)])[0] == 0


def test_save_checkpoint_keeps_a_live_writers_temp_file(tmp_path: Path) -> None:
    directory = tmp_path / "run" / "checkpoints"
    directory.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = directory / f".step-00000009.pt.tmp-{other.pid}"
        live.write_bytes(b"being written by another process")
        dead = directory / ".step-00000008.pt.tmp-999999999"
        dead.write_bytes(b"left by a killed writer")
        ckpt.save_checkpoint(tmp_path / "run", {"method": "toy", "step": 1}, 1)
        assert live.read_bytes() == b"being written by another process"
        assert not dead.exists()
    finally:
        other.kill()
        other.wait()


# ---- signals and sizes -------------------------------------------------------------------------
def _start(run: Path, data: Path, **env: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *_train_args(data, run, "--max-steps", "1000")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=subprocess_env() | env)
    deadline = time.time() + 90
    while time.time() < deadline and not (run / "metrics.jsonl").exists() and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    time.sleep(0.3)
    return proc


@pytest.mark.parametrize("how", ["slow step", "step stuck in C"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_second_signal_ends_the_process(sphere_dataset: Path, tmp_path: Path, how: str, sig: int) -> None:
    """The first signal asks for a checkpoint after the step; the step never ends (a 10-minute sleep, or C code
    that never returns to Python); the second signal ends the process within seconds, the checkpoint intact."""
    run = tmp_path / "run"
    # the first step logs (the test waits for that), the second never ends
    env = {"UNFLAT_TEST_STEP_SLEEP_AFTER_FIRST": "600"} if how == "slow step" else {"UNFLAT_TEST_STEP_STUCK": "1"}
    proc = _start(run, sphere_dataset, **env)
    proc.send_signal(sig)
    time.sleep(0.5)
    assert proc.poll() is None  # the first signal waits for the step
    started = time.time()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    proc.stderr.close()
    if how == "slow step":  # KeyboardInterrupt at once: the CLI's own exit
        assert proc.returncode == 130 and "interrupted" in err, err[-2000:]
    else:  # no Python runs in the trainer: its watchdog process kills it
        assert proc.returncode == -signal.SIGKILL and "killed it (the last checkpoint is intact)" in err, err[-2000:]
    assert time.time() - started < 20
    assert "Traceback" not in err, err[-2000:]
    assert ckpt.load_checkpoint(run)["step"] in (0, 1)  # the last checkpoint is intact
    assert not list((run / "checkpoints").glob(".*.tmp-*"))


def test_batch_size_larger_than_the_data_is_refused_before_any_work(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    """`--batch-size 100000000` hung for 17 minutes in StepSampler.indices (and ignored SIGTERM)."""
    started = time.time()
    code, err = cli_error(capsys, _train_args(sphere_dataset, tmp_path / "run", "--batch-size", "100000000", "--max-steps", "1"))
    assert_one_line_error(code, err, "--batch-size", "100000000", "8 images", "choose --batch-size 8 or less")
    assert time.time() - started < 30 and not (tmp_path / "run").exists()
    assert cli_error(capsys, _train_args(sphere_dataset, tmp_path / "run", "--batch-size", "8", "--max-steps", "1"))[0] == 0


# ---- data edited under a run -------------------------------------------------------------------
@pytest.mark.parametrize("change", ["resolution", "classes"])
def test_resume_after_the_dataset_was_remade_differently_is_refused(trained: Path, sphere_dataset: Path, capsys,
                                                                    change: str) -> None:
    from conftest import write_sphere_dataset

    shutil.rmtree(sphere_dataset)
    if change == "resolution":
        write_sphere_dataset(sphere_dataset, resolution=8)
    else:
        write_sphere_dataset(sphere_dataset, num_classes=3)
    before = ckpt.load_checkpoint(trained)["step"]
    code, err = cli_error(capsys, ["train", "--resume", str(trained), "--max-steps", "5"])
    assert_one_line_error(code, err, str(sphere_dataset), "not the one this run was trained on",
                          "resolution 16 -> 8" if change == "resolution" else "2 classes -> 3")
    assert ckpt.load_checkpoint(trained)["step"] == before


def test_resume_after_images_were_added_goes_on_and_says_so(trained: Path, sphere_dataset: Path, capsys) -> None:
    from conftest import write_sphere_dataset

    shutil.rmtree(sphere_dataset)
    write_sphere_dataset(sphere_dataset, num_shapes=12)
    assert cli_error(capsys, ["train", "--resume", str(trained), "--max-steps", "4"])[0] == 0
    assert "num_images 8 -> 12" in (trained / "run.log").read_text()
