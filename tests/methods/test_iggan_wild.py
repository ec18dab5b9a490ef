"""iggan on data with backgrounds: real images are cut out with their masks and put on the renders' background."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from unflat.config import replace_fields
from unflat.data.format import open_dataset
from unflat.data.loader import iterate_batches
from unflat.errors import UserError
from unflat.methods.base import TrainContext
from unflat.methods.iggan import IGGAN
from unflat.methods.registry import get_method

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def _method(data: Path, data_background: str, overrides: dict[str, object] | None = None) -> IGGAN:
    cfg = replace_fields(get_method("iggan").config("tiny"), {"data": data, "device": "cpu", **(overrides or {})})
    return IGGAN(cfg, replace(open_dataset(data).info, background=data_background), TrainContext(CPU))


def test_real_images_follow_the_data_background(sphere_dataset: Path) -> None:
    batch = next(iterate_batches(sphere_dataset, 0, 1, 4, 0, CPU))
    batch.images = batch.images * batch.masks + torch.linspace(-1, 0.5, batch.images.shape[-1]) * (1 - batch.masks)
    white_data = _method(sphere_dataset, "white").real_images(batch)
    assert torch.equal(white_data, batch.images)  # renders on white: as they are
    method = _method(sphere_dataset, "wild", {"rendering.background": (1.0, 0.0, 0.0)})
    wild = method.real_images(batch)
    outside = (batch.masks < 1e-3).expand_as(wild)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand_as(wild)
    torch.testing.assert_close(wild[outside], red[outside])
    inside = (batch.masks > 0.999).expand_as(wild)
    torch.testing.assert_close(wild[inside], batch.images[inside])
    method.cfg.discriminator.mask_real_images = "off"
    assert torch.equal(method.real_images(batch), batch.images)
    method.cfg.discriminator.mask_real_images = "auto"
    batch.masks = None
    with pytest.raises(UserError, match="no masks"):
        method.real_images(batch)
