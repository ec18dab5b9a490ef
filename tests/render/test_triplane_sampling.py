"""Fused Triton tri-plane sampling against grid_sample (forward values and plane gradients).

Triton's CPU interpreter only works when TRITON_INTERPRET=1 is set before triton is imported, so the
comparison runs in a fresh interpreter process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from unflat.render.triplane_sampling import fused_sampling_supported, interpreter_on

triton = pytest.importorskip("triton")

SCRIPT = textwrap.dedent("""
    import json, torch
    from unflat.geometry.triplane import sample_triplane
    from unflat.render.triplane_sampling import fused_sample_triplane, fused_sampling_supported
    torch.manual_seed(0)
    results = []
    # (batch, channels, resolution, points, aggregation, plane dtype, channels-last layout)
    cases = [(2, 8, 16, 300, "sum", torch.float32, False), (1, 5, 8, 77, "mean", torch.float32, True),
             (2, 8, 12, 130, "mean", torch.bfloat16, True)]
    for b, c, r, m, agg, dtype, channels_last in cases:
        img = torch.randn(b, 3 * c, r, r)
        if channels_last:
            img = img.contiguous(memory_format=torch.channels_last)  # what the synthesis network outputs on CUDA
        img = img.to(dtype).requires_grad_(True)
        planes = img.reshape(b, 3, c, r, r)
        points = (torch.rand(b, m, 3) * 2 - 1) * 1.3  # about a third of the points leave the box
        points[0, :3] = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # box edges
        assert fused_sampling_supported(planes, points)
        ref = sample_triplane(planes.float(), points, 2.0, agg)
        out = fused_sample_triplane(planes, points, 2.0, agg)
        grad = torch.randn_like(ref)
        g_ref, = torch.autograd.grad(ref, img, grad)
        g_out, = torch.autograd.grad(out, img, grad)
        bf16 = fused_sample_triplane(planes, points, 2.0, agg, out_dtype=torch.bfloat16)
        results.append(dict(layout="channels-last" if channels_last else "contiguous", shape=list(out.shape), ref_shape=list(ref.shape), dtype=str(out.dtype),
                            fwd=(out - ref).abs().max().item(), bwd=(g_out.float() - g_ref.float()).abs().max().item(),
                            grad_dtype=str(g_out.dtype), grad_strides_match=g_out.is_contiguous(memory_format=torch.channels_last) == channels_last,
                            bf16=(bf16.float() - ref.bfloat16().float()).abs().max().item(),
                            scale=ref.abs().max().item()))
    print(json.dumps(results))
""")


def test_fused_sampling_matches_grid_sample_in_values_and_plane_gradients():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for case in results:
        assert case["shape"] == case["ref_shape"]
        assert case["dtype"] == "torch.float32"
        assert case["fwd"] < 1e-5 * max(1.0, case["scale"])
        assert case["bwd"] < 1e-4
        assert case["grad_strides_match"] or case["layout"] == "contiguous"  # channels-last planes: so is their gradient
        # bf16 output = rounding the fp32 result once (what the decoder's autocast would do)
        assert case["bf16"] <= 2 ** -7 * max(1.0, case["scale"])
    assert results[2]["grad_dtype"] == "torch.bfloat16"


def test_fused_sampling_is_not_used_where_it_cannot_run():
    planes, points = torch.zeros(1, 3, 4, 8, 8), torch.zeros(1, 10, 3)
    if not os.environ.get("TRITON_INTERPRET"):
        assert not fused_sampling_supported(planes, points)  # CPU tensors without the interpreter
    assert not fused_sampling_supported(planes, points.requires_grad_(True))  # no gradient for the points


def test_kernels_compile_for_an_h100_without_a_gpu():
    """Ahead-of-time compilation for sm_90 catches what the interpreter lets through (types, constexpr
    branches); with channels-last strides the backward's atomic adds become vector reductions."""
    compiler = pytest.importorskip("triton.compiler")
    backends = pytest.importorskip("triton.backends.compiler")
    if not hasattr(compiler, "ASTSource") or not hasattr(backends, "GPUTarget"):
        pytest.skip("this Triton has no ASTSource/GPUTarget")
    if interpreter_on():
        pytest.skip("TRITON_INTERPRET=1: the kernels are interpreted, not compiled")
    from unflat.render import triplane_kernels

    kernels = {"fwd": triplane_kernels.fwd_kernel, "bwd": triplane_kernels.bwd_kernel}
    for name, pointers in (("fwd", ("*bf16", "*fp32", "*bf16")), ("bwd", ("*bf16", "*fp32", "*fp32"))):
        kernel = kernels[name]
        signature, attrs = {}, {}
        for i, arg in enumerate(kernel.arg_names):
            if i < 3:
                signature[arg], attrs[(i,)] = pointers[i], [["tt.divisibility", 16]]
            elif arg in ("scale", "divisor"):
                signature[arg] = "fp32"
            elif arg in ("BLOCK_M", "BLOCK_C", "stride_c"):
                signature[arg] = "constexpr"
            else:  # Triton marks integer arguments divisible by 16 (EG3D's strides and C are)
                signature[arg] = "i32"
                if arg.startswith("stride") or arg == "C":
                    attrs[(i,)] = [["tt.divisibility", 16]]
        source = compiler.ASTSource(kernel, signature, constexprs={"BLOCK_M": 128, "BLOCK_C": 32, "stride_c": 1}, attrs=attrs)
        try:
            ptx = triton.compile(source, target=backends.GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
        except RuntimeError as error:  # no ptxas for this platform
            pytest.skip(f"cannot compile for CUDA here: {error}")
        if name == "bwd":
            assert "red.global" in ptx or "atom.global" in ptx
        else:
            assert "ld.global.v" in ptx  # vectorised channel loads
