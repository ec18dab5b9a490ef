"""StyleGAN resampling: batch chunks under PyTorch's INT_MAX limit, and the compiled forms (shifted slices for
upsampling, concatenated edges for the downsampling filter's padding) equal the aten ops they replace."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unflat.nets import stylegan2


def test_upsample_in_chunks_matches_one_call(monkeypatch):
    x = torch.randn(7, 3, 5, 6).contiguous(memory_format=torch.channels_last)
    reference = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    monkeypatch.setattr(stylegan2, "_INTERPOLATE_MAX_ELEMENTS", 4 * 3 * 5 * 6 * 2)  # two items per chunk
    chunked = stylegan2.upsample2x(x)
    assert chunked.shape == (7, 3, 10, 12)
    torch.testing.assert_close(chunked, reference, rtol=0, atol=0)
    assert chunked.is_contiguous(memory_format=torch.channels_last)


def test_slices_form_equals_interpolate_forward_and_backward():
    torch.manual_seed(0)
    for x in (torch.randn(2, 5, 7, 6, dtype=torch.float64),
              torch.randn(2, 5, 4, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last),
              torch.randn(1, 3, 1, 2, dtype=torch.float64)):  # one-pixel side: both neighbours are the pixel
        a = x.clone().requires_grad_(True)
        b = x.clone().requires_grad_(True)
        reference = F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=False)
        ours = stylegan2._upsample2x_by_slices(b)
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
        assert ours.is_contiguous(memory_format=torch.channels_last) == reference.is_contiguous(memory_format=torch.channels_last)
        grad = torch.randn_like(reference)
        reference.backward(grad)
        ours.backward(grad)
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-12, atol=1e-12)


def test_compiled_upsampling_takes_the_slices_form_and_matches():
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    compiled = torch.compile(stylegan2.upsample2x, backend="aot_eager")  # traced like inductor's input graph
    out = compiled(x)
    torch.testing.assert_close(out, F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    graph_ops = []

    def record(gm, example_inputs):
        graph_ops.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    torch.compile(stylegan2.upsample2x, backend=record)(x)
    assert not any("interpolate" in op or "upsample" in op for op in graph_ops), graph_ops
    assert any("cat" in op for op in graph_ops)


def test_replicate_pad_by_cat_equals_f_pad_forward_and_backward():
    torch.manual_seed(1)
    for x in (torch.randn(2, 3, 5, 4, dtype=torch.float64),
              torch.randn(1, 4, 1, 1, dtype=torch.float64).contiguous(memory_format=torch.channels_last)):
        a = x.clone().requires_grad_(True)
        b = x.clone().requires_grad_(True)
        reference = F.pad(a, (1, 1, 1, 1), mode="replicate")
        ours = stylegan2._pad_replicate_by_cat(b)
        torch.testing.assert_close(ours, reference, rtol=0, atol=0)
        grad = torch.randn_like(reference)
        reference.backward(grad)
        ours.backward(grad)
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-12, atol=1e-12)


def test_compiled_downsampling_avoids_the_pad_op_and_matches():
    x = torch.randn(2, 3, 8, 8)
    ops = []

    def record(gm, example_inputs):
        ops.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    out = torch.compile(stylegan2.downsample2x, backend=record)(x)
    assert not any("pad" in op for op in ops), ops
    torch.testing.assert_close(out, stylegan2.downsample2x(x))  # eager: F.pad
