"""StyleGAN upsampling in batch chunks below PyTorch's INT_MAX output limit equals one interpolate call."""

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
