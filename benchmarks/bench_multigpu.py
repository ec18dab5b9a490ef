"""Multi-GPU (DDP through torchrun) scaling: images/s on 1 and N GPUs at the same per-GPU batch, peak memory per
GPU, rank-0-only writing, and exact counters when a multi-GPU checkpoint resumes on 1 and on N GPUs.

Every run is the real CLI (`torchrun --standalone --nproc_per_node N -m unflat train METHOD ...`); figures come from
the run's own metrics.jsonl (images/s between log points, `gpu_peak_gb` = the largest peak over the ranks).

  python benchmarks/bench_multigpu.py --gpus 1 2                     # GPU machine with >= 2 GPUs
  python benchmarks/bench_multigpu.py --smoke                        # CPU, gloo, tiny presets (a check, no figures)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, report  # noqa: E402

from unflat.engine.checkpoint import load_checkpoint  # noqa: E402


@dataclass
class Workload:
    method: str
    synth: list[str]  # `unflat dataset synth` arguments
    train: list[str]  # `unflat train METHOD` arguments (preset + sizes), without data/out/steps
    steps: int
    log_every: int
    label: str
    warm_rows: int = 1  # logged intervals dropped as warm-up (allocator, cuDNN autotune, workers starting)
    check_resume: bool = False  # resume the widest run on 1 and on N GPUs (costs two more launches)


def workloads(smoke: bool) -> list[Workload]:
    if smoke:
        tiny = ["--preset", "tiny", "--device", "cpu"]
        return [
            Workload("mvtriplane", ["--category", "chair", "car", "--num-shapes", "8", "--resolution", "16"],
                     tiny, 4, 2, "tiny", check_resume=True),
            Workload("progressive", ["--category", "chair", "--num-shapes", "6", "--resolution", "32",
                                     "--views-per-shape", "3"], tiny, 4, 2, "tiny"),
        ]
    return [
        Workload("mvtriplane",
                 ["--category", "chair", "car", "mug", "--num-shapes", "200", "--resolution", "128"],
                 ["--preset", "paper", "--no-compile", "--batch-size", "32"], 40, 10,
                 "paper preset (+g+d, planes 256x32x3, neural 64^2, 48+48 samples, SR to 128), batch 32 per GPU, eager",
                 check_resume=True),
        Workload("progressive",
                 ["--category", "chair", "--num-shapes", "100", "--resolution", "256", "--views-per-shape", "4"],
                 ["--preset", "paper", "--losses.perceptual-features", "pyramid", "--schedule.stage2-start", "0", "--schedule.stage3-start", "0",
                  "--batch-size", "16"], 60, 15,
                 "paper preset (256^2), stage 3 from step 0 (every loss + multi-view D), pyramid perceptual loss, "
                 "batch 16 per GPU"),
        Workload("iggan",
                 ["--category", "chair", "--num-shapes", "200", "--resolution", "128", "--material", "grey"],
                 ["--preset", "paper", "--renderer.pretrain-steps", "0"], 10, 2,
                 "paper preset (64^3 voxels, 128^2, batch 32 per GPU, OpenGL in the loop), GAN steps (no proxy pre-training)"),
    ]


def torchrun(nproc: int, args: list[str], env: dict[str, str], timeout: float, log: Path) -> float:
    """Run `unflat ARGS` under torchrun with nproc processes; returns wall seconds. Raises on failure."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "unflat", *args]
    start = time.perf_counter()
    with open(log, "w") as handle:
        handle.write(" ".join(command) + "\n")
        handle.flush()
        proc = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(command)} (log: {log})")
    return time.perf_counter() - start


def gpu_env(nproc: int, cuda: bool) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "4" if cuda else "1"))
    if cuda:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(nproc))
    return env


def read_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def throughput(rows: list[dict], warm_rows: int) -> tuple[float, float]:
    """(images/s averaged over the logged intervals after warm-up, peak GB over ranks)."""
    timed = [r for r in rows if "images_per_s" in r][warm_rows:]
    if not timed:
        raise RuntimeError("no logged interval after warm-up: raise --steps or lower log_every")
    rate = sum(r["images_per_s"] for r in timed) / len(timed)
    return rate, max((r.get("gpu_peak_gb", 0.0) for r in rows), default=0.0)


def check_single_writer(run: Path, nproc: int) -> str:
    """Evidence that rank 0 alone wrote logs and checkpoints: one start line, unique increasing metric steps."""
    starts = [l for l in (run / "run.log").read_text().splitlines() if "starting" in l]
    steps = [r["step"] for r in read_rows(run) if "images_per_s" in r]
    ok = len(starts) == 1 and steps == sorted(set(steps)) and f"world size {nproc}" in starts[0]
    if not ok:
        raise RuntimeError(f"{run}: expected one writer, found start lines {starts} and metric steps {steps}")
    return f"one run.log start line ('world size {nproc}'), {len(steps)} unique metric rows"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2], help="world sizes to compare (first = baseline)")
    parser.add_argument("--methods", nargs="+", default=None, help="subset of: mvtriplane progressive iggan")
    parser.add_argument("--out", type=Path, default=Path("runs/mgpu"), help="datasets and run directories")
    parser.add_argument("--resume-steps", type=int, default=10, help="steps trained after each resume")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per torchrun call")
    parser.add_argument("--smoke", action="store_true", help="CPU + gloo + tiny presets: checks the script, no figures")
    parser.add_argument("--no-write", action="store_true", help="print JSON only, append no BENCHMARKS.md row")
    args = parser.parse_args()
    cuda = not args.smoke and torch.cuda.is_available()
    if not args.smoke and (not cuda or torch.cuda.device_count() < max(args.gpus)):
        sys.exit(f"needs {max(args.gpus)} CUDA GPUs, found {torch.cuda.device_count() if cuda else 0} (use --smoke on CPU)")
    device = device_name("cuda" if cuda else "cpu") + (f", {torch.cuda.device_count()} GPUs" if cuda else "")
    args.out.mkdir(parents=True, exist_ok=True)
    base, widest = args.gpus[0], max(args.gpus)
    failures = []
    for load in workloads(args.smoke):
        if args.methods and load.method not in args.methods:
            continue
        root = args.out / load.method
        data = root / "data"
        try:
            if not (data / "manifest.json").exists():
                subprocess.run([sys.executable, "-m", "unflat", "dataset", "synth", *load.synth, "--out", str(data),
                                "--overwrite"], check=True, timeout=args.timeout, stdout=subprocess.DEVNULL)
            common = [*load.train, "--data", str(data), "--log-every", str(load.log_every), "--sample-every", "0",
                      "--checkpoint-every", str(load.steps), "--seed", "0"]
            rates: dict[int, tuple[float, float, float]] = {}
            for n in args.gpus:
                run = root / f"{n}gpu"
                shutil.rmtree(run, ignore_errors=True)
                wall = torchrun(n, ["train", load.method, *common, "--out", str(run), "--max-steps", str(load.steps)],
                                gpu_env(n, cuda), args.timeout, root / f"{n}gpu.log")
                rate, peak = throughput(read_rows(run), load.warm_rows)
                writer = check_single_writer(run, n)
                rates[n] = (rate, peak, wall)
                print(json.dumps({"method": load.method, "gpus": n, "images_per_s": round(rate, 2),
                                  "gpu_peak_gb": round(peak, 2), "wall_s": round(wall, 1), "writer": writer}), flush=True)
            parts = []
            for n, (rate, peak, _) in rates.items():
                speedup = rate / rates[base][0]
                eff = speedup / (n / base)
                parts.append(f"{n} GPU{'s' if n > 1 else ''}: {rate:.1f} img/s, peak {peak:.1f} GB/GPU"
                             + ("" if n == base else f" ({speedup:.2f}x, efficiency {eff:.2f})"))
            resume_note = ""
            if widest > 1 and load.check_resume:
                resume_note = "; " + resume_checks(load, root, common, widest, args, cuda)
            report(f"multi-GPU DDP scaling, {load.method}: {load.label}",
                   "; ".join(parts) + f"; rank 0 alone wrote logs/checkpoints{resume_note}", device,
                   {"rates": {str(k): v for k, v in rates.items()}}, write=not (args.no_write or args.smoke))
        except Exception as error:  # one workload failing must not lose the others' figures
            failures.append(f"{load.method}: {error}")
            print(f"FAILED {load.method}: {error}", flush=True)
    if failures:
        sys.exit("failures:\n  " + "\n  ".join(failures))


def resume_checks(load: Workload, root: Path, common: list[str], widest: int, args, cuda: bool) -> str:
    """Resume the widest run's final checkpoint on 1 GPU and on `widest` GPUs; counters must continue exactly."""
    source = root / f"{widest}gpu"
    before = load_checkpoint(source)
    notes = []
    for n in sorted({1, widest}):
        run = root / f"resume-{widest}to{n}"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(source, run)
        target = before["step"] + args.resume_steps
        torchrun(n, ["train", "--resume", str(run), "--max-steps", str(target)], gpu_env(n, cuda), args.timeout,
                 root / f"resume-{widest}to{n}.log")
        after = load_checkpoint(run)
        per_gpu_batch = before["images_seen"] // (before["step"] * widest)
        expected = before["images_seen"] + args.resume_steps * per_gpu_batch * n
        ok = after["step"] == target and after["world_size"] == n and after["images_seen"] == expected
        if not ok:
            raise RuntimeError(f"resume {widest}->{n} GPUs: step {after['step']} (want {target}), images_seen "
                               f"{after['images_seen']} (want {expected}), world {after['world_size']}")
        notes.append(f"{widest}->{n} GPU resume: step {before['step']}->{after['step']}, images {before['images_seen']}"
                     f"->{after['images_seen']}")
    return "; ".join(notes)


if __name__ == "__main__":
    main()
