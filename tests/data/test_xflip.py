"""x-flip augmentation of real batches for the discriminators: rows mirrored whole (all channels), labels untouched, seeded."""

from __future__ import annotations

import torch

from unflat.config import replace_fields
from unflat.data.augment import random_xflip


def test_each_row_is_either_kept_or_mirrored_with_all_its_channels():
    images = torch.randn(64, 4, 5, 7)  # e.g. RGB + depth
    out = random_xflip(images, generator=torch.Generator().manual_seed(0))
    kept = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert bool((kept | mirrored).all())
    assert 16 < int(mirrored.sum()) < 48  # about half
    again = random_xflip(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(random_xflip(images, probability=0.0), images)


def test_mvtriplane_discriminator_sees_mirrored_reals_only_when_asked(tmp_path):
    from dataclasses import replace

    from conftest import write_sphere_dataset
    from unflat.data.format import open_dataset
    from unflat.data.loader import Batch
    from unflat.methods.base import TrainContext
    from unflat.methods.mvtriplane import MVTriplane, tiny

    data = write_sphere_dataset(tmp_path / "data", num_shapes=16)
    dataset = open_dataset(data)
    n = 16
    images = torch.linspace(-1, 1, 16).expand(n, 3, 16, 16).contiguous()  # a left-right ramp: mirrors show
    labels = torch.arange(n) % 2
    batch = Batch(images=images, cameras=dataset.cameras[torch.arange(n)], class_ids=labels.clone(), shape_ids=torch.arange(n))
    inputs = {}
    for xflip in (False, True):
        cfg = replace_fields(tiny(), {"data": data, "device": "cpu", "discriminator.xflip": xflip})
        method = MVTriplane(cfg, dataset.info, TrainContext(device=torch.device("cpu")))
        torch.manual_seed(3)
        inputs[xflip] = method.real_discriminator_input(batch)
    plain, flipped = inputs[False], inputs[True]
    kept = (flipped == plain).flatten(1).all(1)
    mirrored = (flipped == plain.flip(-1)).flatten(1).all(1)  # image and its low-resolution copy mirrored together
    assert bool((kept | mirrored).all()) and bool(kept.any()) and bool(mirrored.any())
    assert not bool((plain == plain.flip(-1)).flatten(1).all(1).any())  # the test image is not symmetric
    assert torch.equal(batch.class_ids, labels)  # labels untouched
