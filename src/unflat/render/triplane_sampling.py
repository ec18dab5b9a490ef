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
import os

import torch
from torch import Tensor
from torch.profiler import record_function

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the torch path is used
    triton = None
    tl = None

constexpr = tl.constexpr if tl is not None else object  # kernel parameter annotation


def triton_available() -> bool:
    return triton is not None


def fused_sampling_supported(planes: Tensor, points: Tensor) -> bool:
    """True when ``fused_sample_triplane`` can replace ``sample_triplane`` for these inputs."""
    if triton is None or (points.device.type != "cuda" and not interpreter_on()):
        return False
    return (planes.dim() == 5 and planes.shape[1] == 3 and planes.device == points.device
            and not points.requires_grad and planes.dtype in (torch.float32, torch.bfloat16, torch.float16))


# ---- kernels (plain functions; compiled for CUDA or interpreted for CPU on first use) ------------
def _fwd_kernel(planes_ptr, points_ptr, out_ptr, M, C, H, W, stride_b, stride_p, stride_c, stride_h, stride_w,
                scale, divisor, BLOCK_M: constexpr, BLOCK_C: constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_c = tl.arange(0, BLOCK_C)
    mask_m = offs_m < M
    mask_c = offs_c < C
    row = b * M + offs_m
    px = tl.load(points_ptr + row * 3, mask=mask_m, other=0.0).to(tl.float32) * scale
    py = tl.load(points_ptr + row * 3 + 1, mask=mask_m, other=0.0).to(tl.float32) * scale
    pz = tl.load(points_ptr + row * 3 + 2, mask=mask_m, other=0.0).to(tl.float32) * scale
    channel = offs_c.to(tl.int64)[None, :] * stride_c
    acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    for p in tl.static_range(3):
        # plane 0 spans (x, y), plane 1 (x, z), plane 2 (y, z): first coordinate along the width
        if p == 0:
            u = px
            v = py
        elif p == 1:
            u = px
            v = pz
        else:
            u = py
            v = pz
        # grid_sample's unnormalisation (align_corners=False); the clamp only keeps far-outside points
        # in int32 range (they stay outside: all their corners are masked)
        ix = tl.minimum(tl.maximum(((u + 1.0) * W - 1.0) * 0.5, -2.0), W + 1.0)
        iy = tl.minimum(tl.maximum(((v + 1.0) * H - 1.0) * 0.5, -2.0), H + 1.0)
        x0f = tl.floor(ix)
        y0f = tl.floor(iy)
        x0 = x0f.to(tl.int32)
        y0 = y0f.to(tl.int32)
        base = planes_ptr + b * stride_b + p * stride_p
        for corner in tl.static_range(4):
            if corner % 2 == 0:
                xi = x0
                wx = (x0f + 1.0) - ix
            else:
                xi = x0 + 1
                wx = ix - x0f
            if corner // 2 == 0:
                yi = y0
                wy = (y0f + 1.0) - iy
            else:
                yi = y0 + 1
                wy = iy - y0f
            valid = mask_m & (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
            offset = yi.to(tl.int64) * stride_h + xi.to(tl.int64) * stride_w
            value = tl.load(base + offset[:, None] + channel, mask=valid[:, None] & mask_c[None, :], other=0.0)
            acc += value.to(tl.float32) * (wx * wy)[:, None]
    acc = acc / divisor
    out = out_ptr + row[:, None] * C + offs_c[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_c[None, :])


def _bwd_kernel(grad_out_ptr, points_ptr, grad_planes_ptr, M, C, H, W, stride_b, stride_p, stride_c, stride_h,
                stride_w, scale, divisor, BLOCK_M: constexpr, BLOCK_C: constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_c = tl.arange(0, BLOCK_C)
    mask_m = offs_m < M
    mask_c = offs_c < C
    row = b * M + offs_m
    px = tl.load(points_ptr + row * 3, mask=mask_m, other=0.0).to(tl.float32) * scale
    py = tl.load(points_ptr + row * 3 + 1, mask=mask_m, other=0.0).to(tl.float32) * scale
    pz = tl.load(points_ptr + row * 3 + 2, mask=mask_m, other=0.0).to(tl.float32) * scale
    grad = tl.load(grad_out_ptr + row[:, None] * C + offs_c[None, :], mask=mask_m[:, None] & mask_c[None, :],
                   other=0.0).to(tl.float32) / divisor
    channel = offs_c.to(tl.int64)[None, :] * stride_c
    for p in tl.static_range(3):
        if p == 0:
            u = px
            v = py
        elif p == 1:
            u = px
            v = pz
        else:
            u = py
            v = pz
        ix = tl.minimum(tl.maximum(((u + 1.0) * W - 1.0) * 0.5, -2.0), W + 1.0)
        iy = tl.minimum(tl.maximum(((v + 1.0) * H - 1.0) * 0.5, -2.0), H + 1.0)
        x0f = tl.floor(ix)
        y0f = tl.floor(iy)
        x0 = x0f.to(tl.int32)
        y0 = y0f.to(tl.int32)
        base = grad_planes_ptr + b * stride_b + p * stride_p
        for corner in tl.static_range(4):
            if corner % 2 == 0:
                xi = x0
                wx = (x0f + 1.0) - ix
            else:
                xi = x0 + 1
                wx = ix - x0f
            if corner // 2 == 0:
                yi = y0
                wy = (y0f + 1.0) - iy
            else:
                yi = y0 + 1
                wy = iy - y0f
            valid = mask_m & (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
            offset = yi.to(tl.int64) * stride_h + xi.to(tl.int64) * stride_w
            tl.atomic_add(base + offset[:, None] + channel, grad * (wx * wy)[:, None],
                          mask=valid[:, None] & mask_c[None, :], sem="relaxed")


@functools.cache
def _kernels():
    """(forward, backward) kernels, compiled for the GPU on first use (Triton's interpreter runs them on
    CPU tensors when TRITON_INTERPRET=1 was set before triton was imported)."""
    return triton.jit(_fwd_kernel), triton.jit(_bwd_kernel)


def interpreter_on() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1 before import)."""
    if triton is None:
        return False
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


LAUNCH_OVERRIDE: dict[str, int] = {}
"""Benchmarks set "block_m" / "num_warps" here to compare launch configurations."""


def _launch_config(m: int, c: int) -> tuple[int, int, int]:
    """(points per program, channel block, warps): about 4k values per program by default."""
    block_c = max(triton.next_power_of_2(c), 2)
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
                fwd[(triton.cdiv(m, block_m), b)](planes, points, out, m, c, h, w, *planes.stride(), scale, divisor,
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
                bwd[(triton.cdiv(m, block_m), b)](grad_out, points, grad_planes, m, c, h, w, *stride, ctx.scale,
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

