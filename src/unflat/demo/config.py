"""`unflat demo`'s options: the default demo (the shipped models, then a short training with a resume) and
`--full` (train a 3D generator from scratch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from unflat.errors import ConfigError

CATEGORIES: tuple[str, ...] = ("car", "chair", "lamp", "mug", "sofa", "table")
"""The embedded categories the shipped models learned."""


@dataclass
class DemoConfig:
    """Run unflat end to end on a CPU in minutes: the shipped models reconstruct photos and held-back renders into
    textured meshes and generate new shapes, then a small model trains, is interrupted and resumes.
    `--full`: train a 3D generator from scratch instead (about 9 minutes on 2 cores)."""

    out: Path = Path("runs/demo")
    """Where everything goes (the default demo: photos/, heldout/, reconstructions/, generated/, train-data/,
    train-run/, sheet.png; --full: data/, run/, samples/, meshes/, turntable.gif)."""
    full: bool = False
    """The train-from-scratch demo instead: synth data, train --method (small preset) for --max-steps, sample."""
    reconstructor: str = "progressive-6cat-128"
    """Shipped reconstructor (`unflat models`) for the photos and the held-back renders."""
    generator: str = "mvtriplane-6cat-64"
    """Shipped 3D generator (`unflat models`) to sample shapes from."""
    photos: int = 8
    """At most this many of the photos scikit-image, scikit-learn and matplotlib ship (0: none; `pip install
    'unflat[demo]'` installs all three)."""
    heldout: tuple[str, ...] = CATEGORIES
    """Categories of the held-back renders (one shape each, synth seed --heldout-seed; empty: none)."""
    heldout_seed: int = 1000
    """Synth seed of the held-back renders (the shipped models trained on seed 0)."""
    generate: tuple[str, ...] = CATEGORIES
    """Classes of the shipped generator to sample one shape of each (grid, depth, GLB, turntable; empty: none)."""
    turntable_frames: int = 24
    """Frames of each turntable GIF."""
    turntable_resolution: int = 128
    """Side of each turntable frame."""
    train_steps: int = 400
    """Training steps of the small model the default demo trains (0: skip training)."""
    interrupt_at: int = 200
    """Step at which the default demo interrupts that training (SIGINT, as Ctrl-C does) before resuming it."""
    train_shapes: int = 60
    """Shapes per category in the default demo's training set (one unposed view each)."""
    method: Literal["iggan", "mvtriplane"] = "iggan"
    """Which 3D generator to train (the default demo's short training and --full)."""
    preset: Literal["tiny", "small"] = "small"
    """Preset of the default demo's short training (--full always uses small)."""
    category: tuple[str, ...] = ("chair",)
    """Embedded categories to train on (see `unflat dataset synth --help`)."""
    num_shapes: int = 300
    """--full: shapes per category in the dataset (one unposed view each)."""
    resolution: int = 32
    """Image side of the training data."""
    material: Literal["parts", "grey"] = "grey"
    """Surface colours of the training data: grey suits iggan (its generator makes shape only); parts for mvtriplane."""
    max_steps: int = 1500
    """--full: training steps (the small preset's own schedule is longer; this keeps the demo to minutes)."""
    train_args: tuple[str, ...] = ()
    """Extra `unflat train METHOD` flags for the demo's training. iggan's proxy-renderer pre-training is a tenth
    of the steps, at most 150, unless these flags set --renderer.pretrain-steps."""
    num_samples: int = 16
    """--full: samples in the final grid and meshes exported."""
    seed: int = 0
    """Seed for data, training and sampling."""
    device: str = "auto"
    """cpu, cuda, mps or auto."""

    def validate(self) -> None:
        for name in ("photos", "train_steps", "interrupt_at", "turntable_frames", "turntable_resolution",
                     "train_shapes", "num_shapes", "max_steps", "num_samples"):
            value = getattr(self, name)
            if value < 0 or (value == 0 and name not in ("photos", "train_steps", "interrupt_at")):
                raise ConfigError(name, f"must be {'>= 0' if name in ('photos', 'train_steps', 'interrupt_at') else '> 0'}, got {value}")
        if self.train_steps and not 0 < self.interrupt_at < self.train_steps:
            raise ConfigError("interrupt_at", f"must be between 0 and --train-steps ({self.train_steps}), "
                                              f"exclusive, got {self.interrupt_at}")
        for name in ("heldout", "generate"):
            unknown = [c for c in getattr(self, name) if c not in CATEGORIES]
            if unknown:
                raise ConfigError(name, f"unknown categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                                        f"choose from {', '.join(CATEGORIES)}")


def pretrain_steps(steps: int) -> int:
    """iggan's proxy-renderer pre-training in a short demo run: a tenth of the steps, at most 150, at least 1."""
    return min(150, max(1, steps // 10))
