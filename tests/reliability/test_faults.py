"""Faults around a training run: an unwritable or occupied run directory, a full disk (before and
during training), NaN/Inf weights, malicious checkpoints at every command that loads one, and the run
log. Errors are checked as the user sees them: `unflat ...` exit code and one line on stderr."""

from __future__ import annotations

import ast
import json
import os
import pickle
import resource
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import REPO, assert_one_line_error, cli_error, toy_spec
from unflat.engine import checkpoint as ckpt
from unflat.engine.trainer import TrainingDiverged
from unflat.runs import train

SPEC = toy_spec()


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "toy", "--preset", "tiny", "--data", str(data), "--out", str(out), "--device", "cpu", *extra]


# ---- run directory and disk ---------------------------------------------------------------------
def test_run_dir_that_cannot_be_created_is_a_one_line_error_before_training(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = cli_error(capsys, _train_args(sphere_dataset, blocker / "run"))
    assert_one_line_error(code, err, str(blocker / "run"), "not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_dir_is_a_one_line_error(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "ro"
    run.mkdir()
    run.chmod(0o500)
    try:
        code, err = cli_error(capsys, _train_args(sphere_dataset, run))
    finally:
        run.chmod(0o700)
    assert_one_line_error(code, err, str(run), "not writable")


def test_not_enough_free_space_is_refused_before_training(sphere_dataset: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import shutil

    from unflat.engine import trainer

    real = shutil.disk_usage
    monkeypatch.setattr(trainer.shutil, "disk_usage", lambda p: real(p)._replace(free=10 << 20))  # a 10 MiB disk
    code, err = cli_error(capsys, _train_args(sphere_dataset, tmp_path / "run"))
    assert_one_line_error(code, err, str(tmp_path / "run"), "MiB free")
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()


def test_new_run_into_an_existing_run_is_refused_and_keeps_it(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert cli_error(capsys, _train_args(sphere_dataset, run, "--max-steps", "3"))[0] == 0
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    code, err = cli_error(capsys, _train_args(sphere_dataset, run, "--max-steps", "5"))
    assert_one_line_error(code, err, str(run), "--resume")
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before


def test_run_that_failed_before_its_first_step_can_be_started_again(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    """Only the step-0 checkpoint (initial weights) exists: nothing to lose, the same command may run again."""
    run = tmp_path / "run"
    code, err = cli_error(capsys, _train_args(sphere_dataset, run, "--nan-at-step", "0", "--max-steps", "2"))
    assert_one_line_error(code, err, "non-finite values at step 0")
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step-00000000.pt"]
    assert cli_error(capsys, _train_args(sphere_dataset, run, "--max-steps", "2"))[0] == 0
    assert ckpt.load_checkpoint(run)["step"] == 2


def test_disk_full_during_training_keeps_previous_checkpoint_and_stops(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    """A real short write: the file-size limit (RLIMIT_FSIZE) lets the step-0 checkpoint (~70 kB, no Adam state
    yet) through and cuts the step-2 one (~155 kB) like a full disk would."""
    run = tmp_path / "run"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (110_000, hard))
    try:
        code, err = cli_error(capsys, _train_args(sphere_dataset, run, "--max-steps", "6", "--checkpoint-every", "2",
                                                  "--log-every", "1"))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert_one_line_error(code, err, "could not write checkpoint", "step-00000002.pt", "is intact", "--resume")
    assert ckpt.load_checkpoint(run)["step"] == 0  # the previous checkpoint, intact
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp" in p.name]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2  # stopped at the failed checkpoint
    # with space again, the run resumes from the intact checkpoint and finishes
    assert cli_error(capsys, ["train", "--resume", str(run)])[0] == 0
    assert ckpt.load_checkpoint(run)["step"] == 6


def test_leftovers_of_a_killed_writer_are_cleaned_and_cut_metrics_line_is_ended(sphere_dataset: Path, tmp_path: Path) -> None:
    """What kill -9 during a checkpoint write or a metrics append leaves behind does not survive the resume."""
    run = tmp_path / "run"
    train(SPEC, replace(SPEC.config("tiny"), data=sphere_dataset, out=run, device="cpu", max_steps=3))
    stale = run / "checkpoints" / ".step-00000006.pt.tmp-999999"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 4, "loss_G": 0.7')  # cut mid-row
    from unflat.runs import resume

    assert resume(run, {"max_steps": 6}).step == 6
    assert not stale.exists()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines[3] == '{"step": 4, "loss_G": 0.7'
    assert [json.loads(line)["step"] for line in lines[:3] + lines[4:]] == [1, 2, 3, 4, 5, 6]


# ---- divergence -----------------------------------------------------------------------------------
def _corrupt_weights_at(monkeypatch, step_to_break: int, value: float) -> None:
    """After train step ``step_to_break`` (only while the learning rate is unlowered) a weight becomes NaN/Inf,
    as an overflowing update would make it, with finite losses and gradients."""
    cls = SPEC.method_cls
    original = cls.train_step

    def train_step(self, batch, step):
        out = original(self, batch, step)
        if step == step_to_break and self.lr_scale == 1.0:
            with torch.no_grad():
                self.G[0].weight[0, 0] = value
        return out

    monkeypatch.setattr(cls, "train_step", train_step)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_stop_policy(sphere_dataset: Path, tmp_path: Path, monkeypatch, value: float) -> None:
    _corrupt_weights_at(monkeypatch, 3, value)  # step 3 ends at self.step == 4, a checkpoint
    run = tmp_path / "run"
    cfg = replace(SPEC.config("tiny"), data=sphere_dataset, out=run, device="cpu", max_steps=8, checkpoint_every=2)
    with pytest.raises(TrainingDiverged, match="weights of G.0.weight are NaN/Inf.*Last good checkpoint"):
        train(SPEC, cfg)
    payload = ckpt.load_checkpoint(run)
    assert payload["step"] == 2  # the checkpoint before the bad step; the bad weights were never written
    assert all(torch.isfinite(t).all() for sd in payload["method_state"]["networks"].values() for t in sd.values())
    assert "non-finite values at step 3: weights of G.0.weight" in (run / "run.log").read_text()


def test_non_finite_weights_rollback_policy(sphere_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    _corrupt_weights_at(monkeypatch, 3, float("inf"))
    run = tmp_path / "run"
    cfg = replace(SPEC.config("tiny"), data=sphere_dataset, out=run, device="cpu", max_steps=8, checkpoint_every=2,
                  nan_policy="rollback")
    assert train(SPEC, cfg).step == 8
    payload = ckpt.load_checkpoint(run)
    assert payload["rollbacks"] == 1 and payload["method_state"]["lr_scale"] == 0.5
    events = [json.loads(line).get("event", "") for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "non-finite: weights of G.0.weight are NaN/Inf" in events
    assert "rollback 1: back to step 2, learning rates x0.5" in events
    assert "rollback 1" in (run / "run.log").read_text()


def test_divergence_through_the_cli_is_one_line(sphere_dataset: Path, tmp_path: Path, capsys) -> None:
    code, err = cli_error(capsys, _train_args(sphere_dataset, tmp_path / "run", "--nan-at-step", "2"))
    assert_one_line_error(code, err, "non-finite values at step 2", "Last good checkpoint", "latest.pt")


# ---- malicious checkpoints at every command that loads a run --------------------------------------
class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/unflat-reliability-pwned",))


@pytest.fixture
def evil_run(tmp_path: Path) -> Path:
    run = tmp_path / "evil"
    (run / "checkpoints").mkdir(parents=True)
    payload = {"format": "unflat-checkpoint", "format_version": 1, "method": "toy", "step": 1, "exploit": _Exploit()}
    with open(run / "checkpoints" / "latest.pt", "wb") as handle:  # a plain pickle ...
        pickle.dump(payload, handle)
    torch.save(payload, run / "checkpoints" / "zip.pt")  # ... and the same inside torch's zip format
    return run


@pytest.mark.parametrize("target", ["latest", "zip"])
@pytest.mark.parametrize("command", [
    ["train", "--resume", "{run}"], ["generate", "{run}", "--out", "{out}"], ["export", "{run}", "--out", "{out}"],
    ["invert", "{run}", "{image}", "--out", "{out}"], ["reconstruct", "{run}", "{image}", "--out", "{out}"],
    ["dataset", "from-generator", "{run}", "--num-shapes", "1", "--out", "{out}"],
])
def test_malicious_checkpoint_is_refused_by_every_command(evil_run: Path, tmp_path: Path, capsys, command, target) -> None:
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    run = evil_run if target == "latest" else evil_run / "checkpoints" / "zip.pt"
    argv = [a.format(run=run, out=tmp_path / "out", image=image) for a in command]
    Path("/tmp/unflat-reliability-pwned").unlink(missing_ok=True)
    code, err = cli_error(capsys, argv + ["--device", "cpu"] if command[0] in ("generate", "export", "invert", "reconstruct") else argv)
    assert_one_line_error(code, err, "refused to load")
    assert not Path("/tmp/unflat-reliability-pwned").exists()


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    """Static guard: torch.load only with weights_only=True; no pickle.load, no np.load(allow_pickle=True)."""
    offenders = []
    for path in sorted((REPO / "src" / "unflat").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if name.endswith("torch.load") or name == "load" and "weights_only" in keywords:
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    offenders.append(f"{where} {ast.unparse(node)}")
            if name in ("pickle.load", "pickle.loads", "cPickle.load", "dill.load", "joblib.load"):
                offenders.append(f"{where} {ast.unparse(node)}")
            if name.endswith("np.load") or name.endswith("numpy.load"):
                value = keywords.get("allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    offenders.append(f"{where} {ast.unparse(node)}")
    assert not offenders, "\n".join(offenders)


# ---- the run log ------------------------------------------------------------------------------------
def test_run_log_has_command_versions_git_hash_and_device(sphere_dataset: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import sys

    import unflat

    argv = _train_args(sphere_dataset, tmp_path / "run", "--max-steps", "2")
    monkeypatch.setattr(sys, "argv", ["unflat", *argv])
    assert cli_error(capsys, argv)[0] == 0
    text = (tmp_path / "run" / "run.log").read_text()
    head = git_head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()
    assert f"command: unflat {' '.join(argv)}" in text
    assert f"unflat {unflat.__version__}, torch {torch.__version__}, CUDA {torch.version.cuda}" in text
    assert f"git {head}" in text and git_head
    assert "device: cpu" in text
    assert "finished at step 2" in text


def test_run_log_is_detached_when_the_run_ends(sphere_dataset: Path, tmp_path: Path, caplog) -> None:
    """Later runs or commands in the same process (generate, a second train) must not write into a finished run's log."""
    import logging

    train(SPEC, replace(SPEC.config("tiny"), data=sphere_dataset, out=tmp_path / "run", device="cpu", max_steps=1))
    with caplog.at_level("WARNING", logger="unflat.run"):
        logging.getLogger("unflat.run").warning("written after the run ended")
    assert "written after the run ended" not in (tmp_path / "run" / "run.log").read_text()
    assert "written after the run ended" in caplog.text


# ---- damaged checkpoints ------------------------------------------------------------------------------
CHECKPOINT_ZOO = {
    "empty": (lambda good: b"", "empty file"),
    "text": (lambda good: b"hello world\n", "not a PyTorch checkpoint"),
    "numpy file": (lambda good: b"\x93NUMPY\x01\x00" + bytes(100), "not a PyTorch checkpoint"),
    "cut in the middle": (lambda good: good[: len(good) // 2], "unreadable or truncated"),
    "cut at the end": (lambda good: good[:-50], "unreadable or truncated"),
    "another program's torch file": (lambda good: _torch_bytes({"state_dict": {"w": torch.zeros(2)}}), "not an unflat checkpoint"),
    "from a future unflat": (lambda good: _torch_bytes({"format": "unflat-checkpoint", "format_version": 7}),
                             "format_version 7 is not supported"),
}


def _torch_bytes(obj: object) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", list(CHECKPOINT_ZOO))
def test_damaged_checkpoint_is_a_one_line_error(sphere_dataset: Path, tmp_path: Path, capsys, damage: str) -> None:
    run = tmp_path / "run"
    train(SPEC, replace(SPEC.config("tiny"), data=sphere_dataset, out=run, device="cpu", max_steps=1))
    path = run / "checkpoints" / "latest.pt"
    make, problem = CHECKPOINT_ZOO[damage]
    bad = make(path.read_bytes())
    path.unlink()  # a hard link to step-00000001.pt: replace, don't write through it
    path.write_bytes(bad)
    for argv in (["train", "--resume", str(run)], ["generate", str(path), "--out", str(tmp_path / "g"), "--device", "cpu"]):
        code, err = cli_error(capsys, argv)
        assert_one_line_error(code, err, str(path), problem)


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x05"]))
def test_load_checkpoint_of_arbitrary_bytes_never_crashes(data: bytes, prefix: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.pt"
        path.write_bytes(prefix + data)
        with pytest.raises(ckpt.CheckpointError, match=str(path)):
            ckpt.load_checkpoint(path)
