"""Exact resume for every registered method: an uninterrupted run of N steps equals a run interrupted
(SIGTERM, the engine's checkpoint-and-exit path) after K steps and resumed to N, bit for bit, for every
tensor and counter in the checkpoint. Each method's config puts a schedule change inside the resumed
part (progressive's stage boundary, mvtriplane's neural-rendering fade-in and multi-view switch, IG-GAN's
end of in-run renderer pre-training, 3DGP's anneals, the depth estimator's cosine LR), and the test
checks from metrics.jsonl that the change really happened after the resume."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import pytest
import torch

from helpers import assert_payloads_equal
from unflat.config import replace_fields
from unflat.engine.checkpoint import load_checkpoint
from unflat.runs import resume, train
from unflat.methods.registry import all_methods

Rows = list[dict]


def _changes(key: str) -> Callable[[Rows], bool]:
    """The logged value of ``key`` takes more than one value over the given rows."""
    return lambda rows: len({r.get(key) for r in rows}) > 1


@dataclass
class Plan:
    steps: int = 4
    interrupt_after: int = 2
    overrides: dict = field(default_factory=dict)  # (dotted) config field -> value
    data: str = "single"  # "single", "multiview" or "none"
    schedule_change: Callable[[Rows], bool] | None = None
    """True when the rows logged after the resume show the schedule change this plan sets up."""


PLANS: dict[str, Plan] = {
    # stage II -> III at step 4 (tiny preset: stage2_start=2, stage3_start=4)
    "progressive": Plan(steps=6, interrupt_after=3, data="multiview", schedule_change=_changes("stage")),
    # batch 4: rendering resolution 8 -> 16 over 16 images (8, 10, 12, 14), multi-view discrimination from step 3
    "mvtriplane": Plan(overrides={"multiview.start_step": 3, "rendering.neural_resolution_final": 16, "rendering.neural_fade_images": 16},
                       schedule_change=lambda rows: _changes("views_per_latent")(rows) and _changes("render/resolution")(rows)),
    # patch-scale, depth-adaptor and camera-EMD anneals over 16 images, still moving after the resume
    "3dgp": Plan(overrides={"depth.adaptor_anneal_images": 16, "patches.anneal_images": 16, "camera_generator.emd_anneal_images": 16},
                 schedule_change=lambda rows: all(_changes(k)(rows) for k in ("patch/beta", "camera/emd_multiplier",
                                                                               "depth/adaptor_start_p"))),
    # renderer pre-training for steps 0-2, then the GAN
    "iggan": Plan(overrides={"renderer.pretrain_steps": 3}, schedule_change=lambda rows: len({"pretraining" in r for r in rows}) > 1),
    "iggan-renderer": Plan(data="none"),
    "depth": Plan(),  # cosine learning-rate schedule over max_steps: a new rate every step
}


def _interrupt_after(monkeypatch, method_cls: type, steps: int) -> None:
    """SIGTERM this process at the end of step ``steps - 1``: the engine finishes the step, checkpoints, exits."""
    original = method_cls.train_step

    def train_step(self, batch, step):
        out = original(self, batch, step)
        if step == steps - 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(method_cls, "train_step", train_step)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch, tmp_path: Path):
    """Tiny networks: one thread is fastest. 3DGP's depth/feature caches go to the test's folder."""
    monkeypatch.setenv("UNFLAT_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(all_methods()))
def test_interrupted_and_resumed_equals_uninterrupted_bitwise(name: str, tmp_path: Path, monkeypatch) -> None:
    from conftest import write_sphere_dataset

    spec = all_methods()[name]
    plan = PLANS.get(name, Plan())
    data = None
    if plan.data == "single":
        data = write_sphere_dataset(tmp_path / "data", num_shapes=8, views_per_shape=1)
    elif plan.data == "multiview":
        data = write_sphere_dataset(tmp_path / "data", num_shapes=6, views_per_shape=4)
    cfg = replace_fields(spec.config("tiny"), {"data": data, "device": "cpu", "tensorboard": False, "sample_every": 0,
                                               "log_every": 1, "checkpoint_every": 1, "max_steps": plan.steps,
                                               **plan.overrides})

    straight = train(spec, replace(cfg, out=tmp_path / "straight"))
    assert straight.step == plan.steps and not straight.interrupted

    with monkeypatch.context() as patch:
        _interrupt_after(patch, spec.method_cls, plan.interrupt_after)
        first = train(spec, replace(cfg, out=tmp_path / "split"))
    assert first.interrupted and first.step == plan.interrupt_after
    assert load_checkpoint(tmp_path / "split")["step"] == plan.interrupt_after
    resumed = resume(tmp_path / "split")  # no overrides: the run's own config, as `unflat train --resume RUN`
    assert resumed.step == plan.steps

    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    count = assert_payloads_equal(a, b, ignore=("config_yaml",))
    same_config = lambda text: [line for line in text.splitlines() if not line.startswith("out:")]  # noqa: E731
    assert same_config(a["config_yaml"]) == same_config(b["config_yaml"])
    assert count >= 4, f"{name}: only {count} tensors in the checkpoint"

    rows = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "event" not in r] == list(range(1, plan.steps + 1))
    if plan.schedule_change is not None:
        after = [r for r in rows if r["step"] > plan.interrupt_after]
        assert plan.schedule_change(after), f"{name}: no schedule change after the resume: {after}"
