"""Reference statistics of a dataset, computed once per (data, backbone) and cached on disk.

The cache key is a content hash of the images (not their path: a re-made dataset with other
pixels gets new statistics) combined with the backbone's name and weights hash. A cache file is a
safetensors file holding the float64 mean and scatter matrix plus a seeded random subset of the
features (for KID and precision/recall), with the hashes in its metadata.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unflat.metrics.distribution import FeatureExtractor, FeatureStats, to_unit_images

CACHE_VERSION = 1


def content_hash(images: np.ndarray | Tensor, rows_per_chunk: int = 256) -> str:
    """sha256 of an image array's dtype, shape and bytes, read in chunks (works on memory-maps)."""
    digest = hashlib.sha256(f"{images.dtype}|{tuple(images.shape)}|".encode())
    for start in range(0, len(images), rows_per_chunk):
        chunk = images[start : start + rows_per_chunk]
        if isinstance(chunk, Tensor):
            chunk = chunk.detach().cpu().contiguous().numpy()
        digest.update(np.ascontiguousarray(chunk).tobytes())
    return digest.hexdigest()


@dataclass
class ReferenceStats:
    """Feature statistics of reference images on one backbone.

    stats: mean/covariance of all images; features: [K,D] a seeded random subset (K <= max_features)
    for KID and precision/recall.
    """

    stats: FeatureStats
    features: Tensor
    backbone_name: str
    weights_hash: str
    data_hash: str
    from_cache: bool = False


def _cache_key(data_hash: str, extractor: FeatureExtractor, max_features: int, seed: int) -> str:
    text = f"v{CACHE_VERSION}|{data_hash}|{extractor.name}|{extractor.weights_hash}|{max_features}|{seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@torch.no_grad()
def compute_reference_stats(
    images: np.ndarray | Tensor,
    extractor: FeatureExtractor,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    max_features: int = 10_000,
    seed: int = 0,
    data_hash: str | None = None,
    progress: bool = False,
) -> ReferenceStats:
    """Stream all images through ``extractor``. images: uint8 [N,H,W,3] or float [N,3,H,W] in [0,1].
    ``progress``: a bar on a terminal, plain progress lines otherwise (`unflat evaluate`)."""
    from unflat.engine.progress import PhaseProgress  # noqa: PLC0415

    n = len(images)
    keep = np.zeros(n, dtype=bool)
    keep[np.random.default_rng(seed).permutation(n)[: min(max_features, n)]] = True
    stats, kept = None, []
    with PhaseProgress("evaluate: reference features", n, "images", enabled=progress) as bar:
        for start in range(0, n, batch_size):
            feats = extractor(to_unit_images(images[start : start + batch_size]).to(device)).float().cpu()
            stats = FeatureStats.from_features(feats) if stats is None else stats.update(feats)
            kept.append(feats[torch.from_numpy(keep[start : start + batch_size])])
            bar.advance(min(batch_size, n - start))
    if stats is None:
        raise ValueError("no reference images")
    return ReferenceStats(stats, torch.cat(kept), extractor.name, extractor.weights_hash, data_hash or content_hash(images))


def cached_reference_stats(
    images: np.ndarray | Tensor,
    extractor: FeatureExtractor,
    cache_dir: str | Path,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    max_features: int = 10_000,
    seed: int = 0,
    data_hash: str | None = None,
    progress: bool = False,
) -> ReferenceStats:
    """Reference statistics from ``cache_dir`` if this (data, backbone) pair was seen before, else
    computed and stored there (``progress``: say how far the computation is). ``data_hash`` may be given when
    known (e.g. a dataset manifest's sha256 of images.npy) to skip hashing the pixels."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    data_hash = data_hash or content_hash(images)
    path = Path(cache_dir) / f"reference-{_cache_key(data_hash, extractor, max_features, seed)}.safetensors"
    if path.is_file():
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("unflat_reference", "{}"))
        if meta.get("weights_hash") == extractor.weights_hash and meta.get("data_hash") == data_hash:
            tensors = load_file(str(path))
            stats = FeatureStats(tensors["mean"], tensors["m2"], int(meta["count"]))
            return ReferenceStats(stats, tensors["features"], meta["backbone_name"], meta["weights_hash"], data_hash, from_cache=True)
    ref = compute_reference_stats(images, extractor, batch_size, device, max_features, seed, data_hash, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "version": CACHE_VERSION,
        "count": ref.stats.count,
        "backbone_name": ref.backbone_name,
        "weights_hash": ref.weights_hash,
        "data_hash": data_hash,
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {"mean": ref.stats.mean.contiguous(), "m2": ref.stats.m2.contiguous(), "features": ref.features.contiguous()},
        str(tmp),
        metadata={"unflat_reference": json.dumps(meta)},
    )
    tmp.replace(path)  # atomic: a crash never leaves a half-written cache entry
    return ref
