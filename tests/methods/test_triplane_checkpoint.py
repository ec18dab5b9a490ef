"""Gradient checkpointing of tri-plane rendering: same images, same gradients, less saved memory."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from unflat.config import replace_fields
from unflat.methods.mvtriplane import tiny
from unflat.methods.triplane_gan import TriplaneGenerator, sample_view_cameras


pytestmark = pytest.mark.usefixtures("one_thread")


def render_and_grads(G: TriplaneGenerator, views: int, seed: int = 3):
    """A generator loss's value, images and every parameter's gradient for fixed latents/cameras/noise."""
    torch.manual_seed(seed)
    z = torch.randn(2, G.z_dim)
    cams = sample_view_cameras(2, views, 3.0, 40.0, generator=torch.Generator().manual_seed(seed))
    G.zero_grad(set_to_none=True)
    ws = G.map(z, G.class_onehot(None, 2, torch.device("cpu")))
    render = G.render(G.planes(ws), ws, cams, perturb=True)  # random depth jitter and importance samples
    loss = render.image.square().mean() + render.depth.mean() + render.opacity.mean()
    loss.backward()
    return render, {k: p.grad.clone() for k, p in G.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("views", [1, 2])
def test_checkpointed_rendering_gives_identical_images_and_gradients(views):
    cfg = replace_fields(tiny(), {"generator.plane_aggregation": "mean"})
    torch.manual_seed(0)
    plain = TriplaneGenerator.from_config(cfg, 0, 16)
    checkpointed = TriplaneGenerator.from_config(replace_fields(cfg, {"rendering.grad_checkpoint": True, "rendering.grad_checkpoint_rays": 20}), 0, 16)
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.grad_checkpoint_rays == 20 and plain.grad_checkpoint_rays == 0
    # 64 rays per image in chunks of 20: uneven chunks
    ref, ref_grads = render_and_grads(plain, views)
    out, grads = render_and_grads(checkpointed, views)
    for name in ("image", "image_raw", "depth", "opacity"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-6, rtol=1e-5)
    assert grads.keys() == ref_grads.keys() and len(grads) > 10
    for key in ref_grads:
        torch.testing.assert_close(grads[key], ref_grads[key], atol=1e-6, rtol=1e-4, msg=key)


def test_checkpointing_saves_fewer_activations():
    cfg = replace_fields(tiny(), {"rendering.neural_resolution": 16, "rendering.num_coarse": 16, "rendering.num_fine": 16})
    torch.manual_seed(0)
    plain = TriplaneGenerator.from_config(cfg, 0, 16)
    checkpointed = copy.deepcopy(plain)
    checkpointed.grad_checkpoint_rays = 32

    def saved_bytes(G: TriplaneGenerator) -> int:
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        ws = G.map(torch.randn(2, G.z_dim), G.class_onehot(None, 2, torch.device("cpu")))
        planes = G.planes(ws).detach().requires_grad_(True)
        cams = sample_view_cameras(2, 1, 3.0, 40.0, generator=torch.Generator().manual_seed(0))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            G.render_volume(planes, *cams.rays(16, 16)) if G is plain else G.render_volume_checkpointed(planes, *cams.rays(16, 16))
        return total

    assert saved_bytes(checkpointed) < 0.2 * saved_bytes(plain)


def test_checkpointed_chunks_run_the_decoder_eagerly_even_when_it_is_compiled():
    """compile_networks replaces decoder.forward on the instance; inside a checkpointed chunk the class's
    forward runs instead (a compiled decoder's recomputation saved differently laid-out activations on an
    H100: CheckpointError). Outside checkpointing the instance's forward is used."""
    cfg = replace_fields(tiny(), {"generator.plane_aggregation": "mean"})
    torch.manual_seed(0)
    plain = TriplaneGenerator.from_config(cfg, 0, 16)
    checkpointed = TriplaneGenerator.from_config(replace_fields(cfg, {"rendering.grad_checkpoint": True, "rendering.grad_checkpoint_rays": 20}), 0, 16)
    checkpointed.load_state_dict(plain.state_dict())
    calls = []

    def stand_in_for_compiled(feats, density_bias=None):
        calls.append(feats.shape)
        return type(checkpointed.decoder).forward(checkpointed.decoder, feats, density_bias)

    checkpointed.decoder.forward = stand_in_for_compiled
    ref, ref_grads = render_and_grads(plain, 1)
    out, grads = render_and_grads(checkpointed, 1)
    assert calls == []  # every decoder call of the render happened inside checkpointed chunks
    torch.testing.assert_close(out.image, ref.image, atol=1e-6, rtol=1e-5)
    for key in ref_grads:
        torch.testing.assert_close(grads[key], ref_grads[key], atol=1e-6, rtol=1e-4, msg=key)
    checkpointed.query(torch.zeros(1, 3, cfg.generator.plane_channels, 8, 8), torch.zeros(1, 5, 3))
    assert calls == [torch.Size([1, 5, cfg.generator.plane_channels])]  # outside checkpointing: the instance's forward
