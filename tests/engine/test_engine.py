"""The engine: exact resume, atomic checkpoints, safe loading, config errors, divergence, DDP, signals."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_method import SPEC  # noqa: E402

from unflat import cli  # noqa: E402
from unflat.engine import checkpoint as ckpt  # noqa: E402
from unflat.engine.trainer import Trainer, TrainingDiverged  # noqa: E402
from unflat.runs import load_run, resume, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _cfg(data: Path, out: Path, **kw):
    return replace(SPEC.config("tiny"), data=data, out=out, device="cpu", **kw)


def _params(run: Path) -> dict[str, torch.Tensor]:
    state = ckpt.load_checkpoint(run)["method_state"]
    flat = {f"net.{n}.{k}": v for n, sd in state["networks"].items() for k, v in sd.items()}
    for name, opt in state["optimizers"].items():
        for pid, st in opt["state"].items():
            for key, value in st.items():
                if isinstance(value, torch.Tensor):
                    flat[f"opt.{name}.{pid}.{key}"] = value
    return flat


def test_resume_equals_uninterrupted_bitwise(sphere_dataset: Path, tmp_path: Path) -> None:
    straight = train(SPEC, _cfg(sphere_dataset, tmp_path / "straight", max_steps=6))
    assert straight.step == 6
    half = train(SPEC, _cfg(sphere_dataset, tmp_path / "split", max_steps=3))
    assert half.step == 3
    resumed = resume(tmp_path / "split", {"max_steps": 6})
    assert resumed.step == 6
    a, b = _params(tmp_path / "straight"), _params(tmp_path / "split")
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and the run directory has what ARCHITECTURE.md promises
    run = tmp_path / "split"
    assert (run / "config.yaml").exists() and (run / "run.log").exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all("loss_G" in r and "images_per_s" in r for r in rows)
    assert list((run / "samples").glob("*.png"))
    assert "torch" in (run / "run.log").read_text()


def test_keep_last_checkpoints(sphere_dataset: Path, tmp_path: Path) -> None:
    train(SPEC, _cfg(sphere_dataset, tmp_path / "run", max_steps=6, checkpoint_every=1, keep_checkpoints=2))
    names = sorted(p.name for p in ckpt.list_checkpoints(tmp_path / "run"))
    assert names == ["step-00000005.pt", "step-00000006.pt"]
    assert ckpt.load_checkpoint(tmp_path / "run")["step"] == 6


def test_interrupted_checkpoint_write_keeps_previous_latest(sphere_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    train(SPEC, _cfg(sphere_dataset, run, max_steps=3))
    before = (run / "checkpoints" / "latest.pt").read_bytes()

    def dying_save(obj, handle, *a, **k):
        handle.write(b"PK\x03\x04 partial bytes of a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(ckpt.CheckpointWriteError, match="previous checkpoint"):
        ckpt.save_checkpoint(run, {"step": 99}, 99)
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before
    assert ckpt.load_checkpoint(run)["step"] == 3
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp" in p.name]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/unflat-pwned",))


def test_malicious_pickle_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "unflat-checkpoint", "payload": _Exploit()}, handle)
    Path("/tmp/unflat-pwned").unlink(missing_ok=True)
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        ckpt.load_checkpoint(path)
    assert not Path("/tmp/unflat-pwned").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save({"format": "unflat-checkpoint", "x": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ckpt.CheckpointError, match="cut.pt"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize(
    "args, field",
    [(["--max-steps", "-1"], "--max-steps"), (["--batch-size", "abc"], "--batch-size"), (["--nan-policy", "pray"], "--nan-policy")],
)
def test_bad_config_value_is_one_line_naming_the_field(sphere_dataset: Path, args, field, capsys) -> None:
    code = cli.main(["train", "toy", "--preset", "tiny", "--data", str(sphere_dataset), *args])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert field in err


def test_train_help_lists_methods_and_fields(capsys) -> None:
    assert cli.main(["train", "--help"]) == 0
    assert "toy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["train", "toy", "--help"])
    out = capsys.readouterr().out
    assert "--max-steps" in out and "Inject a NaN loss" in out


def test_nan_stop_policy_keeps_last_good_checkpoint(sphere_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="Last good checkpoint"):
        train(SPEC, _cfg(sphere_dataset, run, max_steps=6, nan_at_step=4))
    payload = ckpt.load_checkpoint(run)
    assert payload["step"] == 3
    assert all(torch.isfinite(t).all() for sd in payload["method_state"]["networks"].values() for t in sd.values())


def test_nan_rollback_policy_lowers_lr_and_finishes(sphere_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train(SPEC, _cfg(sphere_dataset, run, max_steps=6, nan_at_step=4, nan_policy="rollback"))
    assert result.step == 6
    payload = ckpt.load_checkpoint(run)
    assert payload["rollbacks"] == 1 and payload["method_state"]["lr_scale"] == 0.5
    events = [json.loads(l).get("event", "") for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(e.startswith("rollback 1") for e in events)


def test_load_run_samples_deterministically(sphere_dataset: Path, tmp_path: Path) -> None:
    train(SPEC, _cfg(sphere_dataset, tmp_path / "run", max_steps=3))
    loaded = load_run(tmp_path / "run", "cpu")
    assert loaded.step == 3 and loaded.spec.name == "toy"
    a = loaded.method.sample(4, seed=7).images
    assert torch.equal(a, loaded.method.sample(4, seed=7).images)
    assert not torch.equal(a, loaded.method.sample(4, seed=8).images)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{REPO / 'src'}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_ddp_two_processes_gloo(sphere_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    proc = subprocess.run(
        # --standalone: torchrun picks a free local rendezvous port itself (no pick-then-bind race)
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(Path(__file__).parent / "ddp_script.py"), str(sphere_dataset), str(out)],
        capture_output=True, text=True, timeout=240, env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(l for l in proc.stdout.splitlines() if l.startswith("rank="))
    assert len(lines) == 2 and all("world=2 step=2" in l for l in lines)
    # identical weights on both ranks after gradient averaging
    assert lines[0].split("checksum=")[1] == lines[1].split("checksum=")[1]
    payload = ckpt.load_checkpoint(out)
    assert payload["world_size"] == 2 and payload["images_seen"] == 2 * 2 * 4
    # only rank 0 wrote: one metrics row per logged step, one run.log, checkpoints only under out/
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "spheres"]
    # a 2-process checkpoint resumes in 1 process with exact counters (images are summed, not step x world)
    resumed = Trainer(SPEC, replace(SPEC.config("tiny"), data=sphere_dataset, out=out, max_steps=3, device="cpu"),
                      resume_from=out)
    assert resumed.step == 2 and resumed.images_seen == 16
    resumed.fit()
    payload = ckpt.load_checkpoint(out)
    assert payload["step"] == 3 and payload["world_size"] == 1 and payload["images_seen"] == 16 + 4
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3 and last["images_seen"] == 20


def test_sigterm_writes_checkpoint_then_exits(sphere_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[3]);"
        "from dataclasses import replace; from pathlib import Path; from toy_method import SPEC, ToyGAN;"
        "orig = ToyGAN.train_step\n"
        "def slow(self, b, s):\n    time.sleep(0.05); return orig(self, b, s)\n"
        "ToyGAN.train_step = slow\n"
        "from unflat.runs import train\n"
        "r = train(SPEC, replace(SPEC.config('tiny'), data=Path(sys.argv[1]), out=Path(sys.argv[2]), max_steps=100000, "
        "checkpoint_every=100000, device='cpu'))\n"
        "print('STOPPED', r.step, r.interrupted, flush=True)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(sphere_dataset), str(run), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.jsonl").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert "STOPPED" in out, err[-2000:]
    step = int(out.split("STOPPED")[1].split()[0])
    assert step > 0 and "True" in out
    assert ckpt.load_checkpoint(run)["step"] == step


def test_rollback_gives_up_when_the_failure_repeats(sphere_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _cfg(sphere_dataset, run, max_steps=6, nan_policy="rollback", max_rollbacks=2)
    from toy_method import ToyGAN

    original = ToyGAN.train_step

    def always_nan(self, batch, step):  # a failure that a lower learning rate does not cure
        values = original(self, batch, step)
        if step == 4:
            from unflat.methods.base import NonFiniteError
            raise NonFiniteError("G: loss is nan (repeating)")
        return values

    ToyGAN.train_step = always_nan
    try:
        with pytest.raises(TrainingDiverged):
            train(SPEC, cfg)
    finally:
        ToyGAN.train_step = original
    events = [json.loads(l).get("event", "") for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum(e.startswith("rollback") for e in events) == 2


def test_method_histograms_reach_tensorboard(sphere_dataset: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from toy_method import ToyGAN

    ToyGAN.histograms = lambda self: {"toy/weights": self.G[0].weight.detach().flatten()}
    try:
        train(SPEC, _cfg(sphere_dataset, tmp_path / "run", max_steps=2, tensorboard=True))
    finally:
        del ToyGAN.histograms
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert "toy/weights" in events.Tags()["histograms"]
    assert "loss_G" in events.Tags()["scalars"]


def test_a_run_inside_a_run_sets_the_outer_run_log_aside(tmp_path):
    import logging

    from unflat.engine.logger import close_run_log, open_run_log, run_log_set_aside

    for name in ("outer", "inner"):
        (tmp_path / name).mkdir()
    open_run_log(tmp_path / "outer", torch.device("cpu"))
    try:
        with run_log_set_aside():
            open_run_log(tmp_path / "inner", torch.device("cpu"))
            logging.getLogger("unflat.run").info("inner event")
        logging.getLogger("unflat.run").info("outer event")
    finally:
        close_run_log()
    outer, inner = (tmp_path / "outer" / "run.log").read_text(), (tmp_path / "inner" / "run.log").read_text()
    assert "outer event" in outer and "inner event" not in outer and "inner event" in inner
