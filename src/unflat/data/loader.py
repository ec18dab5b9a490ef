"""Fast, deterministic batches from a dataset.

The order of samples is a pure function of (seed, step): step ``s`` takes positions
``[s*G, (s+1)*G)`` of an endless sequence of per-epoch permutations, where ``G`` is the global batch
(per-rank batch x world size) and rank ``r`` takes its slice. So a resumed run sees exactly the
batches an uninterrupted one would, with no loader state to save, and DDP ranks never overlap.

Batches are gathered from memory-mapped uint8 arrays (in worker processes when ``num_workers>0``)
and converted to float on the target device, which keeps host->device traffic at 1 byte/channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from unflat.cameras import Cameras
from unflat.data.format import Dataset, DatasetError, open_dataset


@dataclass
class Batch:
    """A training batch on one device.

    images: [B,3,H,W] float in [-1,1].  masks: [B,1,H,W] in [0,1] or None.  depth: [B,1,H,W] camera z or None.
    With ``views_per_sample = V > 1`` rows are grouped by shape: rows ``i*V .. i*V+V-1`` are V views of one shape.
    """

    images: Tensor
    cameras: Cameras
    class_ids: Tensor
    shape_ids: Tensor
    masks: Tensor | None = None
    depth: Tensor | None = None
    views_per_sample: int = 1

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class HostBatch:
    """A batch as gathered on the host: uint8 images, not yet on the device."""

    images: Tensor  # uint8 [B,H,W,3]
    cam2world: Tensor
    intrinsics: Tensor
    class_ids: Tensor
    shape_ids: Tensor
    masks: Tensor | None
    depth: Tensor | None  # float16 [B,H,W]
    views_per_sample: int

    def pin_memory(self) -> "HostBatch":
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        return HostBatch(pin(self.images), self.cam2world, self.intrinsics, self.class_ids, self.shape_ids,
                         pin(self.masks), pin(self.depth), self.views_per_sample)

    def to(self, device: torch.device) -> Batch:
        nb = device.type == "cuda"
        images = self.images.to(device, non_blocking=nb).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        masks = None if self.masks is None else self.masks.to(device, non_blocking=nb)[:, None].float().div_(255.0)
        depth = None if self.depth is None else self.depth.to(device, non_blocking=nb)[:, None].float()
        return Batch(
            images=images.contiguous(memory_format=torch.channels_last) if nb else images.contiguous(),
            cameras=Cameras(self.cam2world.to(device), self.intrinsics.to(device)),
            class_ids=self.class_ids.to(device),
            shape_ids=self.shape_ids.to(device),
            masks=masks,
            depth=depth,
            views_per_sample=self.views_per_sample,
        )


class StepSampler:
    """Maps a training step to the dataset indices of this rank's batch (pure function of seed/step)."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 views_per_sample: int = 1) -> None:
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.views_per_sample = views_per_sample
        if views_per_sample > 1:
            groups = [g for g in dataset.views_of_shape() if len(g) >= views_per_sample]
            if not groups:
                raise DatasetError(f"{dataset.root}: no shape has {views_per_sample} views, which this method needs; make a multi-view dataset "
                                 f"(unflat dataset synth --views-per-shape {views_per_sample})")
            self.groups = groups
            self.num_items = len(groups)
        else:
            self.groups = None
            self.num_items = len(dataset)
        self._epoch = -1
        self._perm = np.empty(0, np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
            self._epoch = epoch
        return self._perm

    def indices(self, step: int) -> np.ndarray:
        global_batch = self.batch_size * self.world_size
        start = step * global_batch + self.rank * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        items = np.empty(self.batch_size, np.int64)
        for epoch in np.unique(positions // self.num_items):
            sel = positions // self.num_items == epoch
            items[sel] = self._permutation(int(epoch))[positions[sel] % self.num_items]
        if self.groups is None:
            return items
        # V distinct views of each chosen shape, chosen deterministically from (seed, step, rank).
        rng = np.random.default_rng([self.seed, 1 << 20, step, self.rank])
        return np.concatenate([rng.choice(self.groups[i], self.views_per_sample, replace=False) for i in items])


def gather(dataset: Dataset, indices: np.ndarray, views_per_sample: int = 1) -> HostBatch:
    """Copy the rows ``indices`` out of the memory-mapped arrays (sorted reads, original order kept)."""
    order = np.argsort(indices)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    sorted_idx = indices[order]

    def take(array: np.ndarray | None) -> Tensor | None:
        if array is None:
            return None
        return torch.from_numpy(np.ascontiguousarray(array[sorted_idx][inverse]))

    idx = torch.from_numpy(indices)
    return HostBatch(
        images=take(dataset.images),
        cam2world=dataset.cameras.cam2world[idx],
        intrinsics=dataset.cameras.intrinsics[idx],
        class_ids=torch.from_numpy(dataset.labels[indices]),
        shape_ids=torch.from_numpy(dataset.shape_ids[indices]),
        masks=take(dataset.masks),
        depth=take(dataset.depth),  # float16 until it reaches the device
        views_per_sample=views_per_sample,
    )


class _StepBatches(torch.utils.data.Dataset):
    """Item ``k`` is the HostBatch of step ``first_step + k``; opened lazily so workers memory-map their own copy."""

    def __init__(self, root: Path, first_step: int, last_step: int, batch_size: int, seed: int, rank: int,
                 world_size: int, views_per_sample: int) -> None:
        self.root, self.first_step, self.last_step = root, first_step, last_step
        self.args = (batch_size, seed, rank, world_size, views_per_sample)
        self._dataset: Dataset | None = None
        self._sampler: StepSampler | None = None

    def __len__(self) -> int:
        return max(0, self.last_step - self.first_step)

    def __getitem__(self, k: int) -> HostBatch:
        if self._dataset is None:
            self._dataset = open_dataset(self.root)
            batch_size, seed, rank, world_size, views = self.args
            self._sampler = StepSampler(self._dataset, batch_size, seed, rank, world_size, views)
        assert self._sampler is not None
        return gather(self._dataset, self._sampler.indices(self.first_step + k), self._sampler.views_per_sample)


def iterate_batches(
    root: Path,
    first_step: int,
    last_step: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    views_per_sample: int = 1,
    num_workers: int = 0,
) -> Iterator[Batch]:
    """Yield the batches of steps ``first_step .. last_step-1`` on ``device``."""
    steps = _StepBatches(Path(root), first_step, last_step, batch_size, seed, rank, world_size, views_per_sample)
    loader = torch.utils.data.DataLoader(
        steps,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if num_workers > 0 else None,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),  # keep the global RNG untouched (exact resume)
    )
    for host_batch in loader:
        yield host_batch.to(device)
