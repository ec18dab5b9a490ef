"""The default demo's short training: a small 3D generator on a few embedded shapes, interrupted part-way
(SIGINT, exactly as Ctrl-C on `unflat train` does: the step finishes, a checkpoint is written, exit 130), then
continued with `unflat train --resume` from the step it stopped at.

A re-run of the demo resumes an unfinished run (or reuses a finished one) instead of starting again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from unflat.demo.config import DemoConfig, pretrain_steps
from unflat.engine.progress import console
from unflat.errors import UserError

ENTRIES = {"train-data", "train-data.partial", "train-run"}
"""What the short training writes into --out."""


@dataclass(frozen=True)
class TrainingShown:
    """What the short training did: where, the step it was interrupted at (None: not interrupted in this
    demo), the step it resumed from (None: reused a finished run) and the step it ended at."""

    run: Path
    interrupted_at: int | None
    resumed_from: int | None
    final_step: int


def make_train_data(cfg: DemoConfig) -> Path:
    """--train-shapes unposed views per --category at --resolution -> out/train-data (reused when present)."""
    from unflat.data.commands import SynthConfig, run_synth
    from unflat.data.format import DatasetError, open_dataset

    data = cfg.out / "train-data"
    try:
        open_dataset(data)
        console.print(f"reusing training data {data}", highlight=False)
        return data
    except DatasetError:
        pass
    run_synth(SynthConfig(out=data, category=cfg.category, num_shapes=cfg.train_shapes, resolution=cfg.resolution,
                          views_per_shape=1, seed=cfg.seed, material=cfg.material, overwrite=True))
    return data


def train_command(cfg: DemoConfig, data: Path, run: Path) -> list[str]:
    """The `unflat train` command line of the short training (what a user would type)."""
    args = ["train", cfg.method, "--data", str(data), "--out", str(run), "--preset", cfg.preset,
            "--max-steps", str(cfg.train_steps), "--seed", str(cfg.seed), "--device", cfg.device,
            "--checkpoint-every", str(cfg.train_steps), "--sample-every", str(max(cfg.train_steps // 4, 1)),
            "--log-every", str(max(cfg.train_steps // 40, 1))]
    if cfg.method == "iggan" and "--renderer.pretrain-steps" not in cfg.train_args:
        args += ["--renderer.pretrain-steps", str(pretrain_steps(cfg.train_steps))]
    return args + list(cfg.train_args)


def logged_step(run: Path) -> int:
    """The highest step in run/metrics.jsonl (0 when nothing is logged yet)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return 0
    step = 0
    for line in path.read_text().splitlines():
        try:
            step = max(step, int(json.loads(line).get("step", 0)))
        except (ValueError, AttributeError):
            continue  # a line being written
    return step


def checkpoint_step(run: Path) -> int | None:
    """The step of run/checkpoints/latest.pt, or None when there is none."""
    from unflat.engine.checkpoint import latest_checkpoint, load_checkpoint

    return None if latest_checkpoint(run) is None else int(load_checkpoint(run)["step"])


def train_until_interrupted(cfg: DemoConfig, data: Path, run: Path) -> int:
    """`python -m unflat train ...` in a child process; SIGINT once it has logged step --interrupt-at.
    Returns the step of the checkpoint it wrote on the way out."""
    command = [sys.executable, "-m", "unflat", *train_command(cfg, data, run)]
    console.print(f"$ unflat {' '.join(command[3:])}", highlight=False, soft_wrap=True)
    console.print(f"(the demo sends it SIGINT, as Ctrl-C would, once it has logged step {cfg.interrupt_at})",
                  highlight=False)
    child = subprocess.Popen(command)
    try:
        while child.poll() is None and logged_step(run) < cfg.interrupt_at:
            time.sleep(0.2)
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        code = child.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: training checkpoints and ends on its own
        child.wait()
        raise
    step = checkpoint_step(run)
    if code not in (0, 130) or step is None:
        raise UserError(f"{run}: `unflat {' '.join(command[3:])}` failed (exit {code}); run it yourself to see why")
    return step


def train_and_resume(cfg: DemoConfig) -> TrainingShown:
    """Data, the interrupted training, then the resume to --train-steps (out/train-run)."""
    from unflat.runs import resume

    data = make_train_data(cfg)
    run = cfg.out / "train-run"
    interrupted_at = None
    step = checkpoint_step(run)
    if step is None:
        interrupted_at = step = train_until_interrupted(cfg, data, run)
        console.print(f"[bold]training interrupted at step {step}[/] (checkpoint {run / 'checkpoints' / 'latest.pt'})",
                      highlight=False)
    if step >= cfg.train_steps:
        console.print(f"reusing {run}: it is at step {step} of {cfg.train_steps}", highlight=False)
        return TrainingShown(run, interrupted_at, None, step)
    console.print(f"$ unflat train --resume {run} --max-steps {cfg.train_steps}", highlight=False, soft_wrap=True)
    console.print(f"[bold]resuming from step {step}[/] (counters, optimiser, EMA and RNG states from the checkpoint)",
                  highlight=False)
    result = resume(run, {"max_steps": cfg.train_steps})
    if result.interrupted:  # Ctrl-C during the resume: stop the demo too (a re-run continues from here)
        raise KeyboardInterrupt
    return TrainingShown(run, interrupted_at, step, result.step)
