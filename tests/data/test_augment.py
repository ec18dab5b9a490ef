"""Reconstructor input augmentation: other backgrounds behind the mask, other light on the object; only the
encoder's input changes, deterministically in (seed, step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unflat.config import replace_fields
from unflat.data.augment import composite_backgrounds, crop_to_object, vary_lighting
from unflat.data.format import open_dataset
from unflat.data.loader import iterate_batches
from unflat.methods.base import TrainContext
from unflat.methods.progressive import Progressive, tiny

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def _batch(n: int = 4, size: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """White images with a grey square object in the middle, and its mask."""
    images = torch.ones(n, 3, size, size)
    masks = torch.zeros(n, 1, size, size)
    masks[:, :, 6:18, 6:18] = 1
    images = images * (1 - masks) + 0.2 * masks
    return images, masks


def test_backgrounds_change_only_outside_the_mask() -> None:
    images, masks = _batch()
    out = composite_backgrounds(images, masks, np.random.default_rng(0), probability=1.0, kind="procedural")
    inside, outside = masks.expand_as(images) > 0.5, masks.expand_as(images) < 0.5
    assert torch.equal(out[inside], images[inside])
    assert (out[outside] - 1).abs().mean() > 0.2  # no longer white
    assert out.min() >= -1 and out.max() <= 1
    again = composite_backgrounds(images, masks, np.random.default_rng(0), probability=1.0, kind="procedural")
    assert torch.equal(out, again)
    assert torch.equal(composite_backgrounds(images, masks, np.random.default_rng(0), 0.0), images)


def test_lighting_changes_only_the_object_and_varies_per_image() -> None:
    images, masks = _batch()
    out = vary_lighting(images, masks, np.random.default_rng(1), strength=1.0)
    outside = masks.expand_as(images) < 0.5
    assert torch.allclose(out[outside], images[outside], atol=1e-6)
    objects = out[:, :, 6:18, 6:18]
    assert (objects - images[:, :, 6:18, 6:18]).abs().mean() > 0.01
    per_image = objects.mean(dim=(1, 2, 3))
    assert float(per_image.std()) > 1e-3  # a different light for each image
    assert float((objects[:, 0] - objects[:, 2]).abs().mean()) > 1e-3  # tinted, not only brighter
    assert torch.equal(vary_lighting(images, masks, np.random.default_rng(1), 0.0), images)


def test_progressive_augments_the_encoder_input_only(multiview_sphere_dataset: Path) -> None:
    cfg = replace_fields(tiny(), {"data": multiview_sphere_dataset, "augmentation.background": 1.0,
                                  "augmentation.lighting": 1.0, "augmentation.backgrounds": "procedural"})
    method = Progressive(cfg, open_dataset(multiview_sphere_dataset).info, TrainContext(CPU))
    batch = next(iterate_batches(multiview_sphere_dataset, 0, 1, 4, 0, CPU, views_per_sample=2))
    seen = []
    predict = method.predict
    method.predict = lambda images, latent: (seen.append(images.clone()), predict(images, latent))[1]
    logs = method.train_step(batch, 0)
    assert np.isfinite(float(logs["loss_total"]))
    inputs = batch.images[0::2]
    assert not torch.equal(seen[0], inputs)  # the encoder saw augmented images
    assert torch.equal(method.augment_input(inputs, batch.masks[0::2], 0), seen[0])  # a function of (seed, step)
    assert not torch.equal(method.augment_input(inputs, batch.masks[0::2], 1), seen[0])
    plain = Progressive(replace_fields(cfg, {"augmentation.background": 0.0, "augmentation.lighting": 0.0}),
                        open_dataset(multiview_sphere_dataset).info, TrainContext(CPU))
    assert plain.augment_input(inputs, batch.masks[0::2], 0) is inputs  # off: untouched


def test_crop_to_object_frames_like_reconstructs_crop() -> None:
    """The training-time re-framing on tensors matches `prepare_image(crop='object')` (PIL, the path photos take)."""
    from unflat.data.object_image import prepare_image

    size, extent = 64, 0.6
    rgb = np.full((size, size, 3), 255, np.uint8)
    rgb[6:22, 38:60] = (200, 40, 30)  # a small object near a corner
    rgb[26:30, 8:20] = (30, 40, 200)  # another, apart from it
    mask = np.zeros((size, size), np.float32)
    mask[6:22, 38:60] = 1
    mask[26:30, 8:20] = 1
    reference, reference_fg = prepare_image(rgb, mask, size, extent, np.ones(3, np.float32), return_mask=True)
    images = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
    masks = torch.from_numpy(mask)[None, None]
    cropped, cropped_masks = crop_to_object(images, masks, extent, torch.ones(3))
    ours = ((cropped[0].permute(1, 2, 0) + 1) / 2).numpy()
    assert ((cropped_masks[0, 0].numpy() > 0.5) != (reference_fg > 0.5)).mean() < 0.02
    assert np.abs(ours - reference).mean() < 0.02  # bilinear vs Lanczos resampling: edges differ, not the framing
    rows = np.nonzero((cropped_masks[0, 0] > 0.5).any(1).numpy())[0]
    cols = np.nonzero((cropped_masks[0, 0] > 0.5).any(0).numpy())[0]
    assert abs((rows[0] + rows[-1] + 1) / 2 - size / 2) <= 1 and abs((cols[0] + cols[-1] + 1) / 2 - size / 2) <= 1
    assert abs(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 - extent * size) <= 2
    empty = torch.zeros_like(masks)  # no object: unchanged
    same, _ = crop_to_object(images, empty, extent, torch.ones(3))
    assert torch.allclose(same, images, atol=1e-5)


def test_progressive_object_crop_augments_the_encoder_input(multiview_sphere_dataset: Path) -> None:
    cfg = replace_fields(tiny(), {"data": multiview_sphere_dataset, "augmentation.object_crop": 1.0})
    method = Progressive(cfg, open_dataset(multiview_sphere_dataset).info, TrainContext(CPU))
    batch = next(iterate_batches(multiview_sphere_dataset, 0, 1, 4, 0, CPU, views_per_sample=2))
    inputs, masks = batch.images[0::2], batch.masks[0::2]
    background = torch.tensor([method.data_stats[f"background_{c}"] for c in "rgb"]) * 2 - 1
    expected, _ = crop_to_object(inputs, masks, method.data_stats["object_extent"], background)
    assert torch.equal(method.augment_input(inputs, masks, 0), expected)
    assert not torch.equal(expected, inputs)
    assert np.isfinite(float(method.train_step(batch, 0)["loss_total"]))
