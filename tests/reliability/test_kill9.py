"""Kill -9 at random moments: a real `unflat train` process is SIGKILLed several times at random points
(during start-up, mid-step, mid-checkpoint) and restarted each time (`--resume` when a checkpoint
exists, else the original command). After every kill `latest.pt` loads and is at most one checkpoint
interval behind the furthest step reached; in the end the run finishes and its final checkpoint equals
an uninterrupted run's, bit for bit."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from helpers import assert_payloads_equal, subprocess_env, toy_spec
from unflat.engine.checkpoint import latest_checkpoint, load_checkpoint

SCRIPT = Path(__file__).with_name("toy_cli.py")
MAX_STEPS, EVERY, KILLS = 60, 4, 3


def furthest_logged_step(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [0]
    for line in path.read_text().splitlines():
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):
            pass  # a line cut by the kill
    return max(steps)


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def test_kill_dash_9_at_random_moments_loses_at_most_one_interval(sphere_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    fresh = [sys.executable, str(SCRIPT), "train", "toy", "--preset", "tiny", "--data", str(sphere_dataset),
             "--out", str(run), "--max-steps", str(MAX_STEPS), "--checkpoint-every", str(EVERY), "--log-every", "1",
             "--device", "cpu"]
    env = subprocess_env() | {"UNFLAT_TEST_STEP_SLEEP": "0.04"}
    rng = random.Random(1234)
    kills_before_training = 0
    for kill in range(KILLS):
        command = [sys.executable, str(SCRIPT), "train", "--resume", str(run)] if latest_checkpoint(run) else fresh
        reached = furthest_logged_step(run)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        if kill == 0:  # somewhere in start-up or the first steps: a random moment, but never past step 2 x EVERY
            # (a fixed sleep of 3.9 s found the run finished on a machine that starts and steps fast enough)
            deadline = time.time() + rng.uniform(0.5, 4.0)
            while time.time() < deadline and furthest_logged_step(run) < 2 * EVERY and proc.poll() is None:
                time.sleep(0.02)
        else:  # once it is training again, a random moment later
            deadline = time.time() + 60
            while time.time() < deadline and furthest_logged_step(run) <= reached and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
        assert proc.poll() is None, f"finished before kill {kill}: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        furthest = furthest_logged_step(run)
        if latest_checkpoint(run) is None:
            kills_before_training += 1
            assert furthest < EVERY  # no checkpoint yet only if it had not reached the first interval
            continue
        saved = load_checkpoint(run)["step"]  # never corrupt: loads, and is an unflat checkpoint
        assert furthest - EVERY <= saved <= furthest, (kill, saved, furthest)
    assert kills_before_training < KILLS, "every kill landed before training started: nothing was tested"

    done = subprocess.run([sys.executable, str(SCRIPT), "train", "--resume", str(run)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    final = load_checkpoint(run)
    assert final["step"] == MAX_STEPS
    assert not [p.name for p in (run / "checkpoints").iterdir() if ".tmp" in p.name]  # no half-written leftovers
    lines = (run / "metrics.jsonl").read_text().splitlines()
    cut = [line for line in lines if not _parses(line)]
    assert len(cut) <= KILLS, cut  # at most one row cut per kill; the resumed runs' rows are whole lines
    assert max(json.loads(line)["step"] for line in lines if _parses(line)) == MAX_STEPS
    log = (run / "run.log").read_text()  # every (re)start recorded its command line, versions and device
    assert log.count("command: ") >= 2 and log.count("device: cpu") >= 2 and "resuming toy at step" in log

    # The same run without interruptions (in this process, one thread like the subprocesses) ends identical.
    spec = toy_spec()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from unflat.runs import train

        cfg = replace(spec.config("tiny"), data=sphere_dataset, out=tmp_path / "straight", max_steps=MAX_STEPS,
                      checkpoint_every=EVERY, log_every=1, device="cpu")
        train(spec, cfg)
    finally:
        torch.set_num_threads(threads)
    assert_payloads_equal(load_checkpoint(tmp_path / "straight"), final, ignore=("config_yaml",))
