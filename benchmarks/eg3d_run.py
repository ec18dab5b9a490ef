"""Drive the official EG3D (a patched scratch copy, see eg3d_patch.py) for the same-call speed comparison with
unflat's tri-plane GAN (eg3d_compare.sh runs these steps in one device command):

  python benchmarks/eg3d_run.py build --eg3d DIR --op bias_act        # JIT-build one CUDA op (run one per op, in parallel)
  python benchmarks/eg3d_run.py train --eg3d DIR --data ZIP --json F  # train.py until N timed ticks, parse sec/kimg
  python benchmarks/eg3d_run.py summary --dir LOGS                    # both sides: one JSON line + a BENCHMARKS.md row
  python benchmarks/eg3d_run.py smoke-cpu --eg3d DIR --data ZIP       # CPU check of the patched code (no CUDA)

EG3D settings: ``train.py --cfg=shapenet --gpus=1 --batch=32 --gamma=0.3`` (tri-plane 256x32x3, 64+64 samples per
ray, neural rendering 64^2, SR to 128, fp16 in the last 4 layers of SR and D, TF32 off), the configuration
of FIELD-NOTES' earlier figures, with ``--blur_fade_kimg=1`` so the D-input blur of the first 200 kimg (a
start-of-training transient; unflat's benchmark has it off too) is over before the timed ticks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPS = ("bias_act", "upfirdn2d")  # the fused ops EG3D's tri-plane networks call (filtered_lrelu is StyleGAN3-only)
TICK_RE = re.compile(
    r"^tick (?P<tick>\d+)\s+kimg (?P<kimg>[\d.]+)\s+time .*?sec/tick (?P<sec_tick>[\d.]+)\s+"
    r"sec/kimg (?P<sec_kimg>[\d.]+)\s+maintenance (?P<maintenance>[\d.]+)\s+cpumem (?P<cpumem>[\d.]+)\s+"
    r"gpumem (?P<gpumem>[\d.]+)\s+reserved (?P<reserved>[\d.]+)"
)
PLUGIN_RE = re.compile(r"EG3D_BENCH plugin loaded: (\S+) -> (.+)$")


def eg3d_train_args(data: Path, outdir: Path, batch: int = 32, workers: int = 3) -> list[str]:
    """train.py arguments of the comparison (see the module docstring)."""
    return [f"--outdir={outdir}", "--cfg=shapenet", f"--data={data}", "--gpus=1", f"--batch={batch}", "--gamma=0.3",
            "--metrics=none", "--kimg=1000", "--tick=1", "--snap=1000", f"--workers={workers}", "--blur_fade_kimg=1",
            "--neural_rendering_resolution_initial=64"]


def parse_tick(line: str) -> dict | None:
    """One EG3D status line -> {tick, kimg, sec_tick, sec_kimg, maintenance, cpumem, gpumem, reserved}."""
    match = TICK_RE.search(line)
    if match is None:
        return None
    values = {key: float(value) for key, value in match.groupdict().items()}
    values["tick"] = int(values["tick"])
    return values


def timed_figures(ticks: list[dict], skip: int) -> dict:
    """Throughput and peak memory over the ticks numbered >= ``skip`` (tick 0 is one batch, tick 1 warms up)."""
    timed = [t for t in ticks if t["tick"] >= skip]
    if not timed:
        return {}
    s_per_kimg = sum(t["sec_kimg"] for t in timed) / len(timed)
    return {"s_per_kimg": round(s_per_kimg, 2), "images_per_s": round(1000 / s_per_kimg, 2),
            "peak_memory_gb": max(t["gpumem"] for t in timed), "peak_reserved_gb": max(t["reserved"] for t in timed),
            "timed_ticks": [t["tick"] for t in timed], "sec_kimg_per_tick": [t["sec_kimg"] for t in timed]}


# ---------------------------------------------------------------------------------------------
# build: one JIT-compiled op per process, so the ops build in parallel
# ---------------------------------------------------------------------------------------------
def build_op(eg3d: Path, op: str) -> None:
    sys.path.insert(0, str(eg3d))
    import importlib

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("build: CUDA is not available")
    module = importlib.import_module(f"torch_utils.ops.{op}")
    start = time.perf_counter()
    module._init()  # EG3D's own loader (custom_ops.get_plugin): raises if the build fails
    plugin = module._plugin
    if plugin is None:
        raise SystemExit(f"build: {op} plugin did not load")
    print(f"EG3D_BENCH built {op} in {time.perf_counter() - start:.1f} s -> {getattr(plugin, '__file__', plugin)}",
          flush=True)


def live_group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are still running (zombies excluded; Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


# ---------------------------------------------------------------------------------------------
# train: run train.py, stop after the timed ticks, parse its status lines
# ---------------------------------------------------------------------------------------------
def run_train(eg3d: Path, data: Path, outdir: Path, log: Path, result: Path, tf32: bool, skip: int, timed: int,
              batch: int, workers: int, extra: list[str] | None = None) -> int:
    """Run train.py (``extra``: more train.py options; click keeps the last value of a repeated option)."""
    env = dict(os.environ, EG3D_BENCH_TF32="1" if tf32 else "0", EG3D_BENCH_NO_SNAPSHOTS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "train.py", *eg3d_train_args(data.resolve(), outdir.resolve(), batch, workers), *(extra or [])]
    record: dict = {"side": "eg3d", "tf32": tf32, "command": " ".join(cmd[1:]), "ok": False, "ticks": [], "plugins": {}}
    log.parent.mkdir(parents=True, exist_ok=True)
    # Own process group: the DataLoader workers stop with train.py when the group is signalled.
    proc = subprocess.Popen(cmd, cwd=eg3d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, start_new_session=True)

    def stop() -> None:  # train.py and every process of its group (DataLoader workers), SIGKILL if need be
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0)):  # within eg3d_compare.sh's `timeout -k 15`
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.time() + wait
            while time.time() < deadline:
                proc.poll()  # reap train.py itself
                if not live_group_members(proc.pid):
                    return
                time.sleep(0.1)

    def on_signal(signum, _frame) -> None:  # `timeout` stops us: take train.py down too, keep what was parsed
        stop()
        record["error"] = f"stopped by signal {signum} after {len(record['ticks'])} tick(s)"
        record.update(timed_figures(record["ticks"], skip))
        result.write_text(json.dumps(record))
        sys.exit(124)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    result.with_suffix(".pgid").write_text(str(proc.pid))  # lets eg3d_compare.sh make sure the group is gone
    start = time.time()
    with open(log, "w") as handle:
        assert proc.stdout is not None
        for line in proc.stdout:
            handle.write(line)
            handle.flush()
            plugin = PLUGIN_RE.search(line)
            if plugin:
                record["plugins"][plugin.group(1)] = plugin.group(2).strip()
            tick = parse_tick(line)
            if tick is None:
                continue
            tick["wall_s"] = round(time.time() - start, 1)
            record["ticks"].append(tick)
            print(f"EG3D tick {tick['tick']}: {tick['sec_kimg']:.2f} s/kimg, gpumem {tick['gpumem']:.2f} GB, "
                  f"reserved {tick['reserved']:.2f} GB (wall {tick['wall_s']} s)", flush=True)
            if tick["tick"] >= skip + timed - 1:
                break
    stop()
    returncode = proc.wait()
    missing = [op for op in OPS if not any(name.endswith(op) for name in record["plugins"])]
    record.update(timed_figures(record["ticks"], skip))
    record["wall_s"] = round(time.time() - start, 1)
    if missing:
        record["error"] = f"custom CUDA ops not confirmed loaded: {missing} (train.py exit {returncode}; see {log.name})"
    elif len([t for t in record["ticks"] if t["tick"] >= skip]) < timed:
        record["error"] = f"train.py ended after {len(record['ticks'])} tick(s), exit {returncode}; see {log.name}"
    else:
        record["ok"] = True
    result.write_text(json.dumps(record))
    print(json.dumps(record), flush=True)
    return 0 if record["ok"] else 1


# ---------------------------------------------------------------------------------------------
# summary: both sides, one JSON line, one BENCHMARKS.md row
# ---------------------------------------------------------------------------------------------
def last_json_line(path: Path) -> dict | None:
    """The last line of a log that parses as a JSON object (bench_triplane.py's report line)."""
    if not path.exists():
        return None
    for line in reversed(path.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def load_side(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def summarise(logs: Path, write: bool, neural: int = 64) -> dict:
    sys.path.insert(0, str(HERE))
    from common import report  # noqa: PLC0415

    eg3d = {name: load_side(logs / f"eg3d_{name}.json") for name in ("default", "tf32")}
    ours = {name: last_json_line(logs / f"ours_{name}.log") for name in ("compiled", "fused", "eager")}

    def rate(entry: dict | None) -> float | None:
        return entry.get("images_per_s") if entry and entry.get("images_per_s") and entry.get("ok", True) else None

    summary: dict = {"eg3d": {}, "unflat": {}, "ratios": {}}
    for name, entry in eg3d.items():
        summary["eg3d"][name] = None if entry is None else {
            key: entry.get(key) for key in ("ok", "error", "images_per_s", "s_per_kimg", "peak_memory_gb",
                                            "peak_reserved_gb", "sec_kimg_per_tick", "plugins")}
    for name, entry in ours.items():
        summary["unflat"][name] = None if entry is None else {
            key: entry.get(key) for key in ("images_per_s", "s_per_kimg", "peak_memory_gb", "what", "device")}
    for ours_name, eg3d_name in ((o, e) for o in ("compiled", "fused", "eager") for e in ("default", "tf32")):
        a, b = rate(ours[ours_name]), rate(eg3d[eg3d_name])
        summary["ratios"][f"unflat_{ours_name}/eg3d_{eg3d_name}"] = round(a / b, 3) if a and b else None

    def side(label: str, entry: dict | None, ok: bool = True, log: str = "") -> str:
        if entry is None or not entry.get("images_per_s") or not ok:
            reason = (entry or {}).get("error") or f"no result (see {log})"
            return f"{label}: {reason}"
        memory = entry.get("peak_memory_gb")
        return f"{label} {entry['images_per_s']:.1f} img/s" + (f" ({memory:.1f} GB)" if memory is not None else "")

    # The eager phase runs with fused sampling since run 2 (eg3d_compare.sh); the row says what ran.
    eager_label = "unflat eager" + (" + fused sampling" if "fused sampling" in (ours["eager"] or {}).get("what", "") else "")
    parts = [side("unflat compiled + fused sampling", ours["fused"], log="ours_fused.log"),
             side(eager_label, ours["eager"], log="ours_eager.log"),
             side("EG3D default (TF32 off)", eg3d["default"], bool(eg3d["default"] and eg3d["default"].get("ok")),
                  "eg3d_default.log"),
             side("EG3D TF32 on", eg3d["tf32"], bool(eg3d["tf32"] and eg3d["tf32"].get("ok")), "eg3d_tf32.log")]
    if ours["compiled"] is not None:  # compiled without fused sampling: only in run 1's phase order
        parts.insert(0, side("unflat compiled", ours["compiled"], log="ours_compiled.log"))
    ratios = summary["ratios"]
    parts.append("ratios " + ", ".join(
        f"{label}/EG3D {e3} {ratios[f'unflat_{name}/eg3d_{e3}'] or 'n/a'}"
        for name, label in (("compiled", "compiled"), ("fused", "compiled+fused"), ("eager", "eager"))
        if ours[name] is not None or name != "compiled" for e3 in ("default", "tf32")))
    device = next((entry["device"] for entry in ours.values() if entry and entry.get("device")), None)
    if device is None:
        try:
            import torch  # noqa: PLC0415

            device = f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
        except Exception:  # noqa: BLE001 - a description only
            device = "unknown"
    what = ("same-call comparison: unflat mvtriplane EG3D-equivalent baseline vs official EG3D train.py "
            f"--cfg=shapenet (planes 256x32x3, render {neural}^2, 64+64 samples, SR to 128, batch 32, 1 GPU)")
    measured = any(rate(entry) for entry in (*eg3d.values(), *ours.values()))
    report(what, "; ".join(parts), device, summary, write=write and measured, command="bash benchmarks/eg3d_compare.sh")
    return summary


# ---------------------------------------------------------------------------------------------
# smoke-cpu: the patched code's config, networks and one step of every loss phase, on CPU
# ---------------------------------------------------------------------------------------------
def smoke_cpu(eg3d: Path, data: Path, batch: int) -> None:
    """Build EG3D's G and D exactly as train.py configures them and run every training phase once on CPU
    (the fused ops take their reference paths there). Checks the patches; says nothing about speed."""
    sys.path.insert(0, str(eg3d))
    os.chdir(eg3d)
    import copy

    import numpy as np
    import torch

    import dnnlib
    import train

    captured: dict = {}
    train.launch_training = lambda c, desc, outdir, dry_run: captured.update(c=c, desc=desc)
    train.main.main(args=eg3d_train_args(data.resolve(), Path("/tmp/eg3d-smoke"), batch=batch, workers=1)
                    + ["--batch-gpu", str(batch), "--mbstd-group", str(min(4, batch))], standalone_mode=False)
    c = captured["c"]
    training_set = dnnlib.util.construct_class_by_name(**c.training_set_kwargs)
    common = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution,
                  img_channels=training_set.num_channels)
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(**c.G_kwargs, **common).train().requires_grad_(False)
    G.register_buffer("dataset_label_std", torch.tensor(training_set.get_label_std()))
    D = dnnlib.util.construct_class_by_name(**c.D_kwargs, **common).train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    # On CPU EG3D forces fp32, so the SR block's `x.to(dtype)` returns the rendered feature image itself, which
    # autograd saves; its later in-place `img.add_` (img = rgb, a view of that image) then trips the version
    # check. On the GPU that cast is to fp16 (sr_num_fp16_res=4) and copies. Emulate the copy (CPU smoke only).
    for net in (G, G_ema):
        net.superresolution.forward = (lambda rgb, x, ws, _forward=net.superresolution.forward, **kwargs:
                                       _forward(rgb, x.clone(), ws, **kwargs))
    device = torch.device("cpu")
    loss = dnnlib.util.construct_class_by_name(device=device, G=G, D=D, augment_pipe=None, **c.loss_kwargs)
    images, labels = zip(*[training_set[i % len(training_set)] for i in range(batch)])
    real_img = torch.from_numpy(np.stack(images)).float() / 127.5 - 1
    real_c = torch.from_numpy(np.stack(labels))
    print(f"G {sum(p.numel() for p in G.parameters()) / 1e6:.2f}M params, D {sum(p.numel() for p in D.parameters()) / 1e6:.2f}M;"
          f" depth samples {G.rendering_kwargs['depth_resolution']}+{G.rendering_kwargs['depth_resolution_importance']},"
          f" neural rendering {loss.neural_rendering_resolution_initial}^2, SR {G.rendering_kwargs['superresolution_module']}")
    torch.autograd.set_detect_anomaly(bool(os.environ.get("EG3D_SMOKE_ANOMALY")))
    for phase, module in (("Gmain", G), ("Greg", G), ("Dmain", D), ("Dreg", D)):
        start = time.perf_counter()
        module.requires_grad_(True)
        z = torch.randn(batch, G.z_dim)
        loss.accumulate_gradients(phase=phase, real_img=real_img, real_c=real_c, gen_z=z, gen_c=real_c, gain=1,
                                  cur_nimg=2000)
        module.requires_grad_(False)
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        print(f"phase {phase}: {len(grads)} parameter grads, finite {finite}, {time.perf_counter() - start:.1f} s")
        if not grads or not finite:
            raise SystemExit(f"smoke-cpu: phase {phase} produced no or non-finite gradients")
        module.zero_grad(set_to_none=True)
    out = G_ema(z=torch.randn(batch, G.z_dim), c=real_c, noise_mode="const")
    print("G_ema output:", {key: tuple(value.shape) for key, value in out.items() if torch.is_tensor(value)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="JIT-build one of EG3D's CUDA ops")
    p.add_argument("--eg3d", type=Path, required=True, help="patched EG3D eg3d/ directory")
    p.add_argument("--op", required=True, choices=OPS)
    p = sub.add_parser("train", help="run EG3D's train.py for the timed ticks")
    p.add_argument("--eg3d", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="EG3D dataset zip (eg3d_dataset.py)")
    p.add_argument("--outdir", type=Path, required=True, help="train.py --outdir")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True, help="result file")
    p.add_argument("--tf32", action="store_true", help="labelled variant: TF32 on (EG3D's default is off)")
    p.add_argument("--skip-ticks", type=int, default=2, help="untimed ticks: 0 = one batch, 1 = warm-up")
    p.add_argument("--timed-ticks", type=int, default=2, help="ticks of 1,024 images each to time")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=3, help="train.py --workers (data loading processes)")
    p.add_argument("extra", nargs="*", help="after --: more train.py options (they override the defaults)")
    p = sub.add_parser("summary", help="combine both sides' results")
    p.add_argument("--dir", type=Path, required=True, help="folder with eg3d_{default,tf32}.json, ours_{compiled,eager}.log")
    p.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    p.add_argument("--neural", type=int, default=64, help="neural rendering resolution both sides ran at")
    p = sub.add_parser("smoke-cpu", help="CPU check of the patched EG3D (config, networks, all loss phases)")
    p.add_argument("--eg3d", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    if args.command == "build":
        build_op(args.eg3d.resolve(), args.op)
    elif args.command == "train":
        sys.exit(run_train(args.eg3d.resolve(), args.data, args.outdir, args.log, args.json, args.tf32,
                           args.skip_ticks, args.timed_ticks, args.batch, args.workers, args.extra))
    elif args.command == "summary":
        summarise(args.dir, write=not args.no_write, neural=args.neural)
    else:
        smoke_cpu(args.eg3d.resolve(), args.data, args.batch)


if __name__ == "__main__":
    main()
