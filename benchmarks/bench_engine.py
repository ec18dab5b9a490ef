"""Engine overhead: the same method trained by a bare loop vs by unflat's Trainer (logging, EMA-agnostic
bookkeeping, progress, checkpoints amortised), plus the time to save one checkpoint.

  python benchmarks/bench_engine.py --method mvtriplane --preset small --data DIR --steps 200
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, report, sync  # noqa: E402

from unflat.data.format import open_dataset  # noqa: E402
from unflat.data.loader import iterate_batches  # noqa: E402
from unflat.engine.checkpoint import save_checkpoint  # noqa: E402
from unflat.engine.trainer import Trainer, make_context, step_seed  # noqa: E402
from unflat.methods.registry import get_method  # noqa: E402


def bare_loop(spec, cfg, steps: int) -> float:
    """Seconds per step: method.train_step on the engine's own batches, nothing else."""
    ctx = make_context(cfg)
    torch.manual_seed(cfg.seed)
    method = spec.method_cls(cfg, open_dataset(cfg.data).info, ctx)
    batches = iterate_batches(cfg.data, 0, steps, cfg.batch_size, cfg.seed, ctx.device,
                              views_per_sample=method.views_per_sample, num_workers=cfg.num_workers)
    warm = 5
    for step, batch in enumerate(batches):
        if step == warm:
            sync(ctx.device)
            start = time.perf_counter()
        torch.manual_seed(step_seed(cfg.seed, 0, step))
        method.set_learning_rates(step)
        method.train_step(batch, step)
    sync(ctx.device)
    return (time.perf_counter() - start) / (steps - warm)


def engine_loop(spec, cfg, steps: int, out: Path) -> tuple[float, float]:
    """(seconds per step through Trainer.fit, seconds for one checkpoint save)."""
    cfg = dataclasses.replace(cfg, out=out, max_steps=steps, sample_every=0)
    trainer = Trainer(spec, cfg)
    start = time.perf_counter()
    trainer.fit()
    sync(trainer.ctx.device)
    total = time.perf_counter() - start
    payload = trainer._payload()
    t0 = time.perf_counter()
    save_checkpoint(out, payload, steps + 1, keep_last=0)
    save_seconds = time.perf_counter() - t0
    # subtract the final sample-free save's share? No: fit's saves are part of the amortised overhead.
    return total / steps, save_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="mvtriplane")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    spec = get_method(args.method)
    cfg = dataclasses.replace(spec.config(args.preset), data=args.data, device=args.device,
                              checkpoint_every=args.checkpoint_every, log_every=10)
    out = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    try:
        bare = bare_loop(spec, cfg, args.steps)
        engine, save_s = engine_loop(spec, cfg, args.steps, out / "run")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    overhead = (engine - bare) / bare * 100
    device = device_name(make_context(cfg).device)
    report(f"engine overhead, {args.method} {args.preset}", f"bare {bare*1e3:.1f} ms/step, engine {engine*1e3:.1f} ms/step "
           f"(overhead {overhead:+.1f}%, checkpoint every {args.checkpoint_every}); checkpoint save {save_s:.2f} s",
           device, {"bare_s": bare, "engine_s": engine, "overhead_pct": overhead, "checkpoint_save_s": save_s},
           write=not args.no_write)


if __name__ == "__main__":
    main()
