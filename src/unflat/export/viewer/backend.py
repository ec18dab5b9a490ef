"""A ``ViewerBackend`` over a trained method: the viewer's seed/class picker renders on demand."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from unflat.export.images import make_grid, to_uint8


class MethodSampleBackend:
    """Renders ``method.sample(1, seed, class_ids)`` as PNG (image, and mask/depth beside it when
    the method returns them).

    method: anything with ``sample(n, seed, class_ids=None) -> Samples`` (images in [-1,1]).
    num_classes: class ids must be below it; None when the method is unconditional.
    """

    def __init__(self, method: object, num_classes: int | None = None) -> None:
        self.method = method
        self.num_classes = num_classes

    def sample(self, seed: int, class_id: int | None) -> bytes:
        if class_id is not None and (self.num_classes is None or not 0 <= class_id < self.num_classes):
            limit = "this run is unconditional" if self.num_classes is None else f"class must be < {self.num_classes}"
            raise ValueError(f"no class {class_id}: {limit}")
        class_ids = None if class_id is None else torch.tensor([class_id])
        with torch.no_grad():
            samples = self.method.sample(1, seed, class_ids=class_ids)
        tiles = [to_uint8(samples.images, (-1.0, 1.0))]
        if getattr(samples, "masks", None) is not None:
            tiles.append(to_uint8(samples.masks, (0.0, 1.0)))
        if getattr(samples, "depth", None) is not None:
            depth = samples.depth.float()
            hit = depth > 0
            if hit.any():  # near = bright, background = black
                lo, hi = depth[hit].min(), depth[hit].max()
                depth = torch.where(hit, 1 - (depth - lo) / (hi - lo).clamp_min(1e-6) * 0.8, torch.zeros_like(depth))
            tiles.append(to_uint8(depth, (0.0, 1.0)))
        tiles = [t for t in tiles if t.shape[1:3] == tiles[0].shape[1:3]]
        # Grey padding: a white mask tile stays visible on the white page.
        grid = make_grid(np.concatenate(tiles), nrow=len(tiles), padding=2, pad_value=96)
        buffer = io.BytesIO()
        Image.fromarray(grid).save(buffer, format="PNG")
        return buffer.getvalue()
