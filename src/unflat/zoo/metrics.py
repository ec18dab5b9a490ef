"""Key metrics for a zoo manifest, each with the feature network that produced it, read from an
`unflat evaluate` metrics.json or from a plain list (``{"metrics": [{"name", "value", "feature_network"}]}``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from unflat.jsonfile import read_json
from unflat.zoo.format import ZooError

IMAGE_METRICS = ("fid", "kid_mean", "inception_score_mean", "precision", "recall")
SHAPE_METRICS = ("coverage", "mmd", "one_nna")
VIEW_METRICS = ("psnr", "ssim", "lpips", "silhouette_iou", "depth_accuracy", "chamfer", "volume_iou", "fid", "kid")
PIXELS = "none (computed on pixels)"


def read_metrics_file(path: Path) -> list[dict[str, Any]]:
    """The metrics of ``path`` as [{name, value, feature_network, source}]; a ZooError naming the file otherwise."""
    path = Path(path)
    data = read_json(path, f"--metrics {path}", ZooError)
    if isinstance(data, dict) and "metrics_requested" in data:
        found = from_evaluation(data)
    elif isinstance(data, dict) and isinstance(data.get("metrics"), list):
        found = data["metrics"]
    else:
        raise ZooError(f"--metrics {path}: neither an `unflat evaluate` metrics.json nor "
                       '{"metrics": [{"name": ..., "value": ..., "feature_network": ...}]}')
    out = []
    for i, metric in enumerate(found):
        if not isinstance(metric, dict) or not {"name", "value", "feature_network"} <= set(metric):
            raise ZooError(f"--metrics {path}: metrics[{i}] needs name, value and feature_network (say 'none' for "
                           "metrics on pixels or geometry)")
        value = metric["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ZooError(f"--metrics {path}: metrics[{i}] ({metric['name']}) value must be a finite number, got {value!r}")
        out.append({**metric, "source": metric.get("source", path.name)})
    if not out:
        raise ZooError(f"--metrics {path}: holds no metrics")
    return out


def from_evaluation(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline numbers of an `unflat evaluate` result, each naming its feature network."""
    out: list[dict[str, Any]] = []
    data = results.get("data") or {}
    on = f"{data.get('num_shapes', '?')} shapes of {Path(str(data.get('dir', '?'))).name}"
    backbone = results.get("backbone") or {}
    backbone_name = f"{backbone.get('name')} {backbone.get('weights_hash', '')}".strip() if backbone else None
    images = results.get("images") or {}
    image_net = f"{images.get('backbone_name')} {images.get('weights_hash', '')}".strip() if images else None
    for name in IMAGE_METRICS:
        if images.get(name) is not None:
            out.append({"name": name, "value": float(images[name]), "feature_network": image_net, "on": on})
    shapes = results.get("shapes") or {}
    for name in SHAPE_METRICS:
        if shapes.get(name) is not None:
            out.append({"name": name, "value": float(shapes[name]), "on": on,
                        "feature_network": f"none (Chamfer distance{', ' + str(shapes['chamfer_variant']) if shapes.get('chamfer_variant') else ''})"})
    for view in ("same_view", "novel_view"):
        metrics = results.get(view) or {}
        for name in VIEW_METRICS:
            value = metrics.get(name)
            value = value.get("mean") if isinstance(value, dict) else value
            if value is None:
                continue
            if name == "lpips":
                net = f"{metrics.get('perceptual_backbone', 'lpips')} {metrics.get('perceptual_weights_hash', '')}".strip()
            elif name in ("fid", "kid"):
                net = backbone_name or "unknown"
            else:
                net = PIXELS if name in ("psnr", "ssim") else "none (geometry)"
            out.append({"name": f"{view}.{name}", "value": float(value), "feature_network": net, "on": on})
    return out
