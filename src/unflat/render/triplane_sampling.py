"""Fused tri-plane sampling: one Triton kernel projects points onto the three planes, samples each
bilinearly and aggregates (sum or mean); a second kernel scatters the gradient back to the planes.

Same result as ``unflat.geometry.triplane.sample_triplane`` (``grid_sample``, bilinear, zeros padding,
align_corners=False), but:

* no [B*3,C,1,M] fp32 intermediate (2.4 GB per 48-sample pass at EG3D's batch 32) and no fp32 copy of
  the planes: the kernel reads channels-last planes in place, in their dtype (the synthesis network
  leaves them channels-last bf16 on CUDA), so each corner fetch is C contiguous values, vectorised loads
  (planes in another layout get one channels-last copy first);
* the output [B,M,C] is written once, directly in the decoder's input dtype (bf16 under autocast, which
  is what the decoder's first layer would cast fp32 features to anyway);
* the backward kernel accumulates in fp32 with atomic adds of C contiguous channels per corner, in the
  planes' own layout, and nothing but the points is saved for it (``grid_sample`` saves its input).

The gradient flows to the planes only (the points' coordinates get none: they come from cameras and
no-grad depths during training). ``fused_sampling_supported`` says when the kernel can be used.
On CPU tensors the kernels run in Triton's interpreter when TRITON_INTERPRET=1 (slow; for tests).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

import torch
from torch import Tensor
from torch.profiler import record_function

TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    return TRITON_INSTALLED


def fused_sampling_supported(planes: Tensor, points: Tensor) -> bool:
    """True when ``fused_sample_triplane`` can replace ``sample_triplane`` for these inputs."""
    if not TRITON_INSTALLED or (points.device.type != "cuda" and not interpreter_on()):
        return False
    return (planes.dim() == 5 and planes.shape[1] == 3 and planes.device == points.device
            and not points.requires_grad and planes.dtype in (torch.float32, torch.bfloat16, torch.float16))


@functools.cache
def _kernels():
    """(forward, backward) Triton kernels, imported on first use."""
    from unflat.render import triplane_kernels

    return triplane_kernels.fwd_kernel, triplane_kernels.bwd_kernel


def interpreter_on() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1 before triton's import)."""
    if not TRITON_INSTALLED:
        return False
    knobs = getattr(sys.modules.get("triton"), "knobs", None)
    if knobs is not None:  # already imported: what it decided
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


LAUNCH_OVERRIDE: dict[str, int] = {}
"""Benchmarks set "block_m" / "num_warps" here to compare launch configurations."""


def _launch_config(m: int, c: int) -> tuple[int, int, int]:
    """(points per program, channel block, warps): about 4k values per program by default."""
    block_c = max(1 << (c - 1).bit_length(), 2)  # next power of two
    block_m = LAUNCH_OVERRIDE.get("block_m") or max(16, min(128, 4096 // block_c))
    return block_m, block_c, LAUNCH_OVERRIDE.get("num_warps", 4)


def _dense_strides(t: Tensor) -> bool:
    """True when ``t`` covers its storage exactly once (any permutation of a contiguous layout)."""
    dims = sorted((s, n) for s, n in zip(t.stride(), t.shape) if n > 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


class _FusedTriplaneSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, planes: Tensor, points: Tensor, scale: float, divisor: float, out_dtype: torch.dtype) -> Tensor:
        if not _dense_strides(planes):
            planes = planes.contiguous()
        points = points.contiguous()
        b, _, c, h, w = planes.shape
        m = points.shape[1]
        out = torch.empty(b, m, c, device=points.device, dtype=out_dtype)
        block_m, block_c, warps = _launch_config(m, c)
        fwd, _ = _kernels()
        if m > 0 and b > 0:
            with record_function("unflat::fused_triplane_sample"):
                fwd[(-(-m // block_m), b)](planes, points, out, m, c, h, w, *planes.stride(), scale, divisor,
                                                  BLOCK_M=block_m, BLOCK_C=block_c, num_warps=warps)
        ctx.save_for_backward(points)
        ctx.planes_layout = (planes.shape, planes.stride(), planes.dtype)
        ctx.scale, ctx.divisor = scale, divisor
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (points,) = ctx.saved_tensors
        shape, stride, dtype = ctx.planes_layout
        # fp32 accumulation buffer in the planes' own layout (coalesced atomics for channels-last planes)
        grad_planes = torch.empty_strided(shape, stride, device=points.device, dtype=torch.float32).zero_()
        grad_out = grad_out.contiguous()
        b, _, c, h, w = shape
        m = points.shape[1]
        block_m, block_c, warps = _launch_config(m, c)
        _, bwd = _kernels()
        if m > 0 and b > 0:
            with record_function("unflat::fused_triplane_sample_backward"):
                bwd[(-(-m // block_m), b)](grad_out, points, grad_planes, m, c, h, w, *stride, ctx.scale,
                                                  ctx.divisor, BLOCK_M=block_m, BLOCK_C=block_c, num_warps=warps)
        return grad_planes.to(dtype), None, None, None, None


def fused_sample_triplane(planes: Tensor, points: Tensor, box_size: float, aggregation: str = "sum",
                          out_dtype: torch.dtype | None = None) -> Tensor:
    """planes [B,3,C,R,R] (any layout; fp32/bf16/fp16), points [B,M,3] (no grad) -> features [B,M,C].

    Matches ``sample_triplane(planes, points, box_size, aggregation)`` up to float rounding. ``out_dtype``:
    default fp32, or the autocast dtype when autocast is on for the points' device (the decoder's
    first layer casts to it anyway).
    """
    if out_dtype is None:
        device_type = points.device.type
        out_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else torch.float32
    divisor = 3.0 if aggregation == "mean" else 1.0
    if planes.shape[2] > 1 and planes.stride(2) != 1:
        # channels-last copy (cheap next to the sampling): each corner's C channels become one coalesced load
        planes = planes.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return _FusedTriplaneSample.apply(planes, points.float(), 2.0 / box_size, divisor, out_dtype)

