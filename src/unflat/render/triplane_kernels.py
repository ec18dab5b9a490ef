"""Triton kernels of the fused tri-plane sampling (``unflat.render.triplane_sampling`` imports this module
only when the fused path runs, so importing unflat never imports triton).

fwd_kernel: points [B,M,3] -> features [B,M,C] (bilinear samples of the three planes, summed, divided
by ``divisor``). bwd_kernel: d features [B,M,C] -> atomic adds into d planes (fp32, the planes' strides).
Grid: (cdiv(M, BLOCK_M), B). Planes are addressed by strides (b, plane, c, h, w), so any layout works;
channels-last (stride_c == 1) gives vectorised loads and vector atomic reductions.
With TRITON_INTERPRET=1 set before triton is imported, Triton's interpreter runs them on CPU tensors.
"""

import triton
import triton.language as tl


@triton.jit
def fwd_kernel(planes_ptr, points_ptr, out_ptr, M, C, H, W, stride_b, stride_p, stride_c, stride_h, stride_w,
                scale, divisor, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
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


@triton.jit
def bwd_kernel(grad_out_ptr, points_ptr, grad_planes_ptr, M, C, H, W, stride_b, stride_p, stride_c, stride_h,
                stride_w, scale, divisor, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
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
