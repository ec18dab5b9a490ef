"""Tri-plane sampling alone, forward + backward: grid_sample (unflat.geometry.triplane) vs the fused Triton
kernel (unflat.render.triplane_sampling), at one training pass's size, with their numerical agreement.

EG3D-equivalent pass: batch 32, planes 256x32x3 (bf16, channels-last, as the synthesis network leaves
them under autocast), 64^2 rays x 48 samples = 196,608 points per latent, mean aggregation, output bf16.

  python benchmarks/bench_triplane_sampling.py                    # H100: also sweeps launch configurations
  python benchmarks/bench_triplane_sampling.py --device cpu --batch 1 --resolution 16 --points 500   # smoke
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, report, timed  # noqa: E402

from unflat.geometry.triplane import sample_triplane  # noqa: E402
from unflat.render import triplane_sampling as fused  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--points", type=int, default=64 * 64 * 48, help="points per latent")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 unless the fused kernel agrees with grid_sample (output and plane "
                             "gradient within 1%% of their largest magnitude); scripts use it before relying on it")
    args = parser.parse_args()
    device = torch.device(args.device)
    b, c, r, m = args.batch, args.channels, args.resolution, args.points

    torch.manual_seed(0)
    image = torch.randn(b, 3 * c, r, r, device=device).to(torch.bfloat16)
    image = image.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    planes = image.reshape(b, 3, c, r, r)
    points = (torch.rand(b, m, 3, device=device) * 2 - 1) * 1.1
    grad = torch.randn(b, m, c, device=device, dtype=torch.bfloat16)

    def reference():  # what the generator did before: fp32 planes + grid_sample, decoder casts to bf16
        out = sample_triplane(planes.float(), points, 2.0, "mean").to(torch.bfloat16)
        (g,) = torch.autograd.grad(out, image, grad)
        return out, g

    def fused_pass():
        out = fused.fused_sample_triplane(planes, points, 2.0, "mean", out_dtype=torch.bfloat16)
        (g,) = torch.autograd.grad(out, image, grad)
        return out, g

    def forward_only(fn):
        with torch.no_grad():
            return fn()

    ref_out, ref_grad = reference()
    new_out, new_grad = fused_pass()
    out_err = (new_out.float() - ref_out.float()).abs().max().item()
    out_rel = out_err / max(ref_out.float().abs().max().item(), 1e-12)
    grad_err = ((new_grad.float() - ref_grad.float()).abs().max() / ref_grad.float().abs().max()).item()
    del ref_out, ref_grad, new_out, new_grad

    times = {"grid_sample fwd": timed(lambda: forward_only(lambda: sample_triplane(planes.float(), points, 2.0, "mean")),
                                      device, args.repeats),
             "grid_sample fwd+bwd": timed(reference, device, args.repeats)}
    configs = [(None, None)] + ([(32, 4), (64, 4), (128, 8), (256, 8)] if device.type == "cuda" else [])
    best = None
    for block_m, warps in configs:
        fused.LAUNCH_OVERRIDE.clear()
        if block_m:
            fused.LAUNCH_OVERRIDE.update(block_m=block_m, num_warps=warps)
        name = "default" if block_m is None else f"{block_m}x{warps}w"
        fwd = timed(lambda: forward_only(lambda: fused.fused_sample_triplane(planes, points, 2.0, "mean",
                                                                               out_dtype=torch.bfloat16)), device, args.repeats)
        both = timed(fused_pass, device, args.repeats)
        times[f"fused {name} fwd"], times[f"fused {name} fwd+bwd"] = fwd, both
        if best is None or both < best[1]:
            best = (name, both, fwd)
    fused.LAUNCH_OVERRIDE.clear()

    ratio = times["grid_sample fwd+bwd"] / best[1]
    what = (f"tri-plane sampling fwd+bwd, one pass: batch {b}, planes {r}x{c}x3 bf16 channels-last, {m} points "
            f"per latent, mean -> bf16")
    figure = (f"grid_sample {times['grid_sample fwd'] * 1e3:.1f} ms fwd, {times['grid_sample fwd+bwd'] * 1e3:.1f} ms "
              f"fwd+bwd; fused Triton ({best[0]}) {best[2] * 1e3:.1f} ms fwd, {best[1] * 1e3:.1f} ms fwd+bwd "
              f"({ratio:.2f}x); max |diff| {out_err:.2g} (bf16 output), plane-gradient diff {grad_err:.2g} of max")
    record = {k.replace(" ", "_") + "_ms": round(v * 1e3, 3) for k, v in times.items()}
    record.update(speedup=round(ratio, 3), best_config=best[0], max_abs_diff=out_err, grad_rel_diff=grad_err)
    report(what, figure, device_name(device), record, write=not args.no_write)
    if args.check and not (out_rel <= 1e-2 and grad_err <= 1e-2):
        print(f"fused sampling disagrees with grid_sample: output {out_rel:.3g}, gradient {grad_err:.3g} of max",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
