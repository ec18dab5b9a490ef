"""How much the `progressive` network's prediction depends on its input at initialisation.

For 8 different images (the analytic ellipsoids of tests/conftest.py, one view each) this prints,
per architecture (``--arch normalised`` = today's default, ``legacy`` = the first implementation),
the input-dependent spread of each encoder block's activations, of the feature vector, of the
vertex offsets and of the texture: spread = std across the 8 inputs / RMS of the values (0 = the
output ignores the input, ~1 = the input decides it), plus the offsets' std in world units.

    PYTHONPATH=src:tests python benchmarks/progressive_init_spread.py --preset paper --resolution 128
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def spread(x: torch.Tensor) -> float:
    x = x.flatten(1).double()
    return float(x.std(0).mean() / x.square().mean().sqrt().clamp_min(1e-30))


def main() -> None:
    from conftest import write_ellipsoid_dataset

    from unflat.config import replace_fields
    from unflat.data.format import open_dataset
    from unflat.methods.base import TrainContext
    from unflat.methods.registry import get_method

    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = get_method("progressive")
    with tempfile.TemporaryDirectory() as tmp:
        data = write_ellipsoid_dataset(Path(tmp) / "ell", views_per_shape=1, resolution=args.resolution)
        dataset = open_dataset(data)
        images = torch.from_numpy(np.asarray(dataset.images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        rows = []
        for arch in ("legacy", "normalised"):
            torch.manual_seed(args.seed)
            cfg = replace_fields(spec.presets[args.preset](), {"data": data, "arch": arch, "device": "cpu",
                                                               "rendering.rasterizer": "torch",
                                                               "losses.perceptual_features": "pyramid"})
            method = spec.method_cls(cfg, dataset.info, TrainContext(torch.device("cpu")))
            enc = method.net.encoder
            layers = []
            with torch.no_grad():
                x = torch.nn.functional.interpolate(images, size=enc.resolution) if images.shape[-1] != enc.resolution else images
                for layer in enc.convs:
                    x = layer(x)
                    if isinstance(layer, (torch.nn.ReLU, torch.nn.LeakyReLU)):
                        layers.append(round(spread(x), 5))
                features = enc(images)
                deformation, texture = method.net.decoder(features, None)
                verts, _ = method.predict(images, None)
            offsets = verts - method.template.vertices[None] * cfg.template.radius
            rows.append({"arch": arch, "preset": args.preset, "resolution": args.resolution,
                         "encoder_block_spread": layers, "feature_spread": round(spread(features), 5),
                         "offset_spread": round(spread(offsets), 5),
                         "offset_std_across_inputs": float(offsets.std(0).mean()),
                         "offset_rms": float(offsets.square().mean().sqrt()),
                         "texture_spread": round(spread(texture), 5),
                         "texture_std_across_inputs": float(texture.std(0).mean())})
            print(json.dumps(rows[-1]))


if __name__ == "__main__":
    main()
