"""Per-image outputs of frozen networks (estimated depth, classifier features), computed once and cached.

3DGP pairs every real image with an estimated depth map and, for knowledge distillation, with the
features of a frozen classifier. Neither changes during training, so both are computed once per
(dataset, network) and stored as ``.npy`` under the cache directory, keyed by the sha256 of the dataset
files the values depend on (the bytes on disk, not the hashes its manifest records: a file edited after the
dataset was written gets new values; images.npy for a network's outputs, depth.npy, masks.npy and
cameras.json for the ground-truth depth) and the network's identity (name + weight hash)::

    <cache>/<kind>/<dataset-hash>-<network-identity>.npy   (+ .json describing it)

The cache directory is ``unflat.cache.cache_root()`` (``$UNFLAT_CACHE_DIR``, default ``~/.cache/unflat``).
Files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from unflat.cache import cache_root, files_digest
from unflat.data.format import Dataset, open_dataset, read_manifest
from unflat.data.loader import Batch, StepSampler

ImagesToArray = Callable[[Tensor], Tensor]  # images [B,3,H,W] in [-1,1] -> [B, ...]


IMAGES = ("images.npy",)
GROUND_TRUTH_DEPTH = ("depth.npy", "masks.npy", "cameras.json")


def dataset_fingerprint(root: Path | str, depends_on: tuple[str, ...] = IMAGES) -> str:
    """Hash of the bytes of a dataset's files ``depends_on`` (sha256 of each, memoised by
    ``unflat.cache.file_digest``), with its image count and resolution."""
    manifest = read_manifest(Path(root))
    digest = files_digest(root, depends_on)
    return hashlib.sha256(f"{digest}:{manifest['num_images']}:{manifest['resolution']}".encode()).hexdigest()[:16]


def cache_path(root: Path | str, identity: str, kind: str, cache_dir: Path | None = None,
               depends_on: tuple[str, ...] = IMAGES) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in identity)
    return Path(cache_dir or cache_root()) / kind / f"{dataset_fingerprint(root, depends_on)}-{safe}.npy"


def images_tensor(dataset: Dataset, start: int, stop: int, device: torch.device) -> Tensor:
    """Rows start..stop-1 of a dataset as float images [B,3,H,W] in [-1,1]."""
    block = np.array(dataset.images[start:stop])  # a writable copy of the memory-mapped rows
    return torch.from_numpy(block).to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def cached_per_image(
    root: Path | str,
    identity: str,
    kind: str,
    compute: Callable[[Dataset, int, int], Tensor],
    batch_size: int = 64,
    cache_dir: Path | None = None,
    dtype: np.dtype = np.float16,
    log: Callable[[str], None] | None = None,
    depends_on: tuple[str, ...] = IMAGES,
) -> np.ndarray:
    """``compute(dataset, start, stop) -> [stop-start, ...]`` for every image, cached; returns a memory map.

    The whole dataset is processed once, in batches, the first time (dataset, identity, kind) is asked for.
    """
    path = cache_path(root, identity, kind, cache_dir, depends_on)
    if path.is_file():
        return np.load(path, mmap_mode="r")
    dataset = open_dataset(root)
    n = len(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    from unflat.engine.progress import progress_bar

    started = time.time()
    out: np.ndarray | None = None
    try:
        with progress_bar(transient=True) as bar:
            task = bar.add_task(f"{kind} of {n} images", total=n, rate="")
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                values = compute(dataset, start, stop).detach().float().cpu().numpy()
                if out is None:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n, *values.shape[1:]))
                out[start:stop] = values.astype(dtype)
                bar.update(task, completed=stop)
        assert out is not None
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    seconds = time.time() - started
    path.with_suffix(".json").write_text(json.dumps({
        "dataset": str(Path(root).resolve()), "dataset_hash": path.name.split("-")[0],
        "depends_on": list(depends_on), "identity": identity,
        "kind": kind, "num_images": n, "seconds": round(seconds, 3),
    }, indent=2))
    if log is not None:
        log(f"cached {kind} of {n} images by {identity} in {seconds:.1f}s: {path}")
    return np.load(path, mmap_mode="r")


def estimated_depth(root: Path | str, estimator: "object", batch_size: int = 64, cache_dir: Path | None = None,
                    log: Callable[[str], None] | None = None) -> np.ndarray:
    """Relative depth float16 [N,H,W] in [-1,1] of every image of a dataset by ``estimator`` (a DepthEstimator)."""
    device = getattr(estimator, "device", torch.device("cpu"))

    def compute(dataset: Dataset, start: int, stop: int) -> Tensor:
        return estimator(images_tensor(dataset, start, stop, device))[:, 0]  # type: ignore[operator]

    return cached_per_image(root, estimator.identity, "depth", compute, batch_size, cache_dir, log=log)  # type: ignore[attr-defined]


def ground_truth_depth(root: Path | str, cache_dir: Path | None = None) -> np.ndarray:
    """The dataset's own depth.npy in the same relative format as an estimator's (float16 [N,H,W])."""
    from unflat.nets.depth_estimator import ground_truth_relative

    def compute(dataset: Dataset, start: int, stop: int) -> Tensor:
        if dataset.depth is None:
            raise ValueError(f"{dataset.root} has no depth.npy")
        depth = torch.from_numpy(np.array(dataset.depth[start:stop], dtype=np.float32))[:, None]
        masks = None if dataset.masks is None else torch.from_numpy(np.array(dataset.masks[start:stop]))[:, None].float() / 255
        return ground_truth_relative(depth, dataset.cameras[start:stop], masks)[:, 0]

    return cached_per_image(root, "ground-truth-v1", "depth", compute, 256, cache_dir, depends_on=GROUND_TRUTH_DEPTH)


class BatchRows:
    """Finds which dataset rows a training batch holds, to look up per-image cached arrays.

    The loader's order is a pure function of (seed, step) (see ``unflat.data.loader``), so the rows of
    step ``s`` are recomputed here rather than carried through the batch; a cheap label/pixel check
    guards against any mismatch (then ``rows`` returns None and callers compute values on the fly).
    """

    def __init__(self, root: Path | str, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 views_per_sample: int = 1) -> None:
        self.dataset = open_dataset(root)
        self.sampler = StepSampler(self.dataset, batch_size, seed, rank, world_size, views_per_sample)

    def rows(self, batch: Batch, step: int) -> np.ndarray | None:
        if len(batch) != self.sampler.batch_size * self.sampler.views_per_sample:
            return None
        rows = self.sampler.indices(step)
        labels = torch.from_numpy(np.array(self.dataset.labels[rows])).to(batch.class_ids.device)
        if not torch.equal(labels, batch.class_ids):
            return None
        # Every pixel: a few microseconds next to a GAN step, and two steps may share rows.
        expected = take_rows(self.dataset.images, rows, batch.images.device).permute(0, 3, 1, 2).div(127.5).sub(1.0)
        if not torch.equal(expected, batch.images.float()):
            return None
        return rows


def take_rows(array: np.ndarray, rows: np.ndarray, device: torch.device) -> Tensor:
    """array[rows] as a float32 tensor on ``device`` (sorted reads from the memory map, original order kept)."""
    order = np.argsort(rows)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    block = np.array(array[rows[order]], dtype=np.float32)[inverse]
    return torch.from_numpy(block).to(device)
