"""Where the time of a tri-plane GAN training step goes: torch.profiler over a few steps after warm-up.

Writes to --out (default $OUT or ./profile-triplane):
  profile_summary.txt  - time per category (plane sampling fwd/bwd, decoder MLP, volume compositing,
                         importance sampling, StyleGAN synthesis, super-resolution, discriminator, R1,
                         optimizer, EMA, other) and the top ops by self device time, with % of the step;
  profile_summary.json - the same numbers;
  trace.json.gz        - a chrome trace (chrome://tracing, ui.perfetto.dev) of one further step.

  python benchmarks/profile_triplane.py --eg3d --variant compile+fused      # H100, EG3D-equivalent sizes
  python benchmarks/profile_triplane.py --preset tiny --device cpu           # smoke test (CPU times)

Forward ops are attributed by the ``unflat/...`` profiler ranges of the training step; backward ops by
their autograd sequence number to the forward op that created them (so a compiled region's backward
lands in the category of its forward). Sizes and variants take the same flags as bench_triplane.py.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from bench_triplane import build_config, build_parser, make_method, parse_variant, setup_device  # noqa: E402
from common import device_name, sync  # noqa: E402

from unflat.config import replace_fields  # noqa: E402

RANGE_CATEGORIES = {  # innermost unflat/ range -> category
    "unflat/triplane/sample": "plane sampling",
    "unflat/triplane/decoder": "decoder MLP",
    "unflat/volume/composite": "volume compositing",
    "unflat/volume/importance": "importance sampling",
    "unflat/G/synthesis": "StyleGAN synthesis",
    "unflat/G/superres": "super-resolution",
    "unflat/D/fake-for-G": "discriminator",
    "unflat/D/real": "discriminator",
    "unflat/D/fake": "discriminator",
    "unflat/D/real-r1": "R1",
    "unflat/D/r1": "R1",
    "unflat/G/ema": "EMA",
}
CATEGORY_ORDER = ["plane sampling", "decoder MLP", "volume compositing", "importance sampling", "StyleGAN synthesis",
                  "super-resolution", "discriminator", "R1", "optimizer", "EMA", "other"]
BACKWARD_PREFIX = "autograd::engine::evaluate_function: "


class Categoriser:
    """Maps profiler events (CPU ops, which carry the device time of the kernels they launch) to categories."""

    def __init__(self, events) -> None:
        self.forward: dict[tuple[int, int], object] = {}
        for e in events:  # outermost op of a sequence number = the op that made the autograd node
            if e.sequence_nr >= 0 and not self._in_backward(e):
                self.forward.setdefault((e.thread, e.sequence_nr), e)
        self.cache: dict[int, tuple[str, str]] = {}

    @staticmethod
    def _in_backward(e) -> bool:
        while e is not None:
            if e.name.startswith(BACKWARD_PREFIX):
                return True
            e = e.cpu_parent
        return False

    def __call__(self, e, depth: int = 0) -> tuple[str, str]:
        """(category, "fwd" | "bwd") of event e."""
        key = id(e)
        if key not in self.cache:
            self.cache[key] = self._categorise(e, depth)
        return self.cache[key]

    def _categorise(self, e, depth: int) -> tuple[str, str]:
        if "grid_sampler" in e.name or "fused_triplane" in e.name:  # the sampling ops, whoever calls them
            return "plane sampling", "bwd" if "backward" in e.name else "fwd"
        node = e
        while node is not None:
            name = node.name
            if name.startswith(("Optimizer.", "aten::_foreach")):
                return "optimizer", "fwd"
            if name.startswith(BACKWARD_PREFIX) or (name.endswith("Backward0") or name.endswith("Backward1")
                                                     or name == "CompiledFunctionBackward"):
                source = self.forward.get((getattr(node, "fwd_thread", node.thread), node.sequence_nr))
                if source is None and node.cpu_parent is not None and node.sequence_nr < 0:
                    node = node.cpu_parent
                    continue
                if source is None or depth > 8:
                    return _by_name(e.name), "bwd"
                category, _ = self(source, depth + 1)
                return category, "bwd"
            if name in RANGE_CATEGORIES:
                return RANGE_CATEGORIES[name], "fwd"
            node = node.cpu_parent
        return _by_name(e.name), "fwd"


def _by_name(name: str) -> str:
    if "grid_sampler" in name or "triplane" in name:
        return "plane sampling"
    if "adam" in name.lower() or "foreach" in name:
        return "optimizer"
    return "other"


def _self_device_us(e) -> float:
    """Self GPU time of an op (the attribute was self_cuda_time_total before torch 2.4)."""
    value = getattr(e, "self_device_time_total", None)
    return e.self_cuda_time_total if value is None else value


def summarise(prof, steps: int, wall_s: float, use_device: bool) -> dict:
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU]
    categorise = Categoriser(events)
    per_category: dict[tuple[str, str], float] = defaultdict(float)
    per_op: dict[str, dict] = {}
    for e in events:
        t = _self_device_us(e) if use_device else e.self_cpu_time_total
        if t <= 0:
            continue
        category, phase = categorise(e)
        per_category[(category, phase)] += t
        op = per_op.setdefault(e.name, {"us": 0.0, "calls": 0, "categories": defaultdict(float)})
        op["us"] += t
        op["calls"] += 1
        op["categories"][f"{category} {phase}"] += t
    total = sum(per_category.values()) or 1.0
    categories = []
    for name in CATEGORY_ORDER:
        for phase in ("fwd", "bwd"):
            us = per_category.get((name, phase), 0.0)
            if us > 0:
                categories.append({"category": f"{name} {phase}", "ms_per_step": us / 1e3 / steps, "percent": 100 * us / total})
    ops = sorted(per_op.items(), key=lambda kv: -kv[1]["us"])
    top = [{"op": name, "ms_per_step": v["us"] / 1e3 / steps, "percent": 100 * v["us"] / total,
            "calls_per_step": v["calls"] / steps, "category": max(v["categories"], key=v["categories"].get)}
           for name, v in ops]
    return {"steps": steps, "wall_ms_per_step": 1e3 * wall_s / steps, "timed": "device" if use_device else "cpu",
            "total_ms_per_step": total / 1e3 / steps, "categories": categories, "top_ops": top}


def format_summary(summary: dict, title: str, top: int) -> str:
    kind = "self CUDA time" if summary["timed"] == "device" else "self CPU time"
    lines = [title, "",
             f"{summary['steps']} profiled steps: wall {summary['wall_ms_per_step']:.1f} ms/step (with profiler), "
             f"{kind} {summary['total_ms_per_step']:.1f} ms/step", "",
             f"{'category':<28}{'ms/step':>10}{'% of step':>11}"]
    lines += [f"{c['category']:<28}{c['ms_per_step']:>10.2f}{c['percent']:>10.1f}%" for c in summary["categories"]]
    lines += ["", f"top {top} ops by {kind}:", f"{'op':<62}{'ms/step':>9}{'%':>7}{'calls':>7}  category"]
    for op in summary["top_ops"][:top]:
        name = op["op"] if len(op["op"]) <= 60 else op["op"][:57] + "..."
        lines.append(f"{name:<62}{op['ms_per_step']:>9.2f}{op['percent']:>6.1f}%{op['calls_per_step']:>7.0f}  {op['category']}")
    return "\n".join(lines) + "\n"


def profile_method(method, batches, cfg, device: torch.device, out: Path, label: str, first_step: int = 13,
                   steps: int = 4, top: int = 25) -> str:
    """Profile ``steps`` training steps of a warmed-up method from ``first_step`` on, write the summary
    (txt + json) and a one-step chrome trace to ``out``; returns the summary text."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    profiled = range(first_step, first_step + steps)
    sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for step in profiled:
            method.train_step(batches[step % len(batches)], step)
        sync(device)
        wall = time.perf_counter() - start
    summary = summarise(prof, len(profiled), wall, device.type == "cuda")
    out.mkdir(parents=True, exist_ok=True)
    title = (f"tri-plane GAN training step profile: {label} (planes {cfg.generator.plane_resolution}x{cfg.generator.plane_channels}x3, "
             f"render {cfg.rendering.neural_resolution}^2, {cfg.rendering.num_coarse}+{cfg.rendering.num_fine} samples, batch {cfg.batch_size}), "
             f"{device_name(device)}\nsteps {profiled.start}-{profiled.stop - 1}; R1 runs every {cfg.regularisation.r1_every} steps "
             f"in training, density regularisation every {cfg.regularisation.density_reg_every}")
    text = format_summary(summary, title, top)
    (out / "profile_summary.txt").write_text(text)
    (out / "profile_summary.json").write_text(json.dumps({"title": title, **summary}, indent=1))

    # A chrome trace of one more step (one step keeps the file small).
    with profile(activities=activities) as trace:
        method.train_step(batches[0], profiled.stop)
        sync(device)
    raw = out / "trace.json"
    trace.export_chrome_trace(str(raw))
    with open(raw, "rb") as src, gzip.open(out / "trace.json.gz", "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()
    return text + f"wrote {out / 'profile_summary.txt'}, {out / 'trace.json.gz'} ({(out / 'trace.json.gz').stat().st_size / 1e6:.1f} MB)\n"


def main() -> None:
    parser = build_parser()
    parser.description = __doc__
    parser.add_argument("--variant", default="eager", help="one bench_triplane variant, e.g. compile+fused")
    parser.add_argument("--first-step", type=int, default=13,
                        help="index of the first profiled step (13: steps 13-16 hold one R1 and one density-reg step)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "profile-triplane")))
    parser.set_defaults(steps=4, warmup=3)
    args = parser.parse_args()
    device = setup_device(args)
    compiled, mode, overrides = parse_variant(args.variant)
    cfg = build_config(args)
    cfg = replace_fields(cfg, {"rendering.fused_sampling": False, "rendering.grad_checkpoint": False, **overrides})
    method, batches = make_method(cfg, args, device, compiled, mode)
    for step in range(args.warmup):
        method.train_step(batches[step % 4], step)
    label = (f"variant {args.variant}, {'EG3D-equivalent' if args.eg3d else 'preset ' + args.preset}, {args.precision}")
    print(profile_method(method, batches, cfg, device, args.out, label, args.first_step, args.steps, args.top), flush=True)


if __name__ == "__main__":
    main()
