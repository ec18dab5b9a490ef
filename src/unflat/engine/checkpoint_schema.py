"""The schema of an unflat checkpoint, checked on load before anything is built from it.

A checkpoint that loads (weights_only) can still be malformed: keys missing, values of the wrong type, a
config that does not fit its method, networks of another shape, NaN weights. Each is a ``CheckpointError``
whose one line names the file and the field (``latest.pt: field 'method_state.networks.G.w' has shape
(3, 3), this unflat's mvtriplane network expects (16, 3)``), never a KeyError or a torch RuntimeError.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
import yaml

from unflat.errors import CheckpointError, ConfigError


# dataset_info: field -> type (DatasetInfo's fields, as the trainer stores them)
_INFO_FIELDS: dict[str, type | tuple[type, ...]] = {
    "resolution": int, "num_images": int, "num_shapes": int, "views_per_shape": int,
    "class_names": (list, tuple), "has_masks": bool, "has_depth": bool, "has_meshes": bool,
}


def _kind(value: Any) -> str:
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_payload(path: Path, payload: dict) -> None:
    """Check the fields every unflat checkpoint has (after its format and version were checked)."""

    def fail(field: str, problem: str) -> None:
        raise CheckpointError(f"{path}: field '{field}' {problem}; the checkpoint is damaged or not from this unflat")

    if not isinstance(payload.get("method"), str) or not payload["method"]:
        fail("method", "is missing" if "method" not in payload else f"must be a method name, got {_kind(payload['method'])}")
    for name, required in (("step", True), ("images_seen", False), ("rollbacks", False), ("world_size", False)):
        if name not in payload:
            if required:
                fail(name, "is missing")
            continue
        if not _is_int(payload[name]) or payload[name] < 0:
            fail(name, f"must be an integer >= 0, got {payload[name]!r:.40}")
    config = payload.get("config_yaml")
    if not isinstance(config, str):
        fail("config_yaml", "is missing" if config is None else f"must be YAML text, got {_kind(config)}")
    try:
        parsed = yaml.safe_load(config)
    except yaml.YAMLError as exc:
        fail("config_yaml", f"is not valid YAML ({str(exc).splitlines()[0]})")
    if parsed is not None and not isinstance(parsed, dict):
        fail("config_yaml", f"must be a mapping of config fields, got a {_kind(parsed)}")
    info = payload.get("dataset_info")
    if not isinstance(info, dict):
        fail("dataset_info", "is missing" if info is None else f"must be a mapping, got {_kind(info)}")
    for name, kind in _INFO_FIELDS.items():
        value = info.get(name)
        if not isinstance(value, kind) or (kind is int and not _is_int(value)) or (kind is bool) != isinstance(value, bool):
            fail(f"dataset_info.{name}", "is missing" if name not in info else f"has the wrong type ({_kind(value)})")
    if not info["class_names"] or not all(isinstance(c, str) for c in info["class_names"]):
        fail("dataset_info.class_names", "must be a non-empty list of names")
    if info["resolution"] <= 0 or info["views_per_shape"] <= 0:
        fail("dataset_info", "resolution and views_per_shape must be positive")
    state = payload.get("method_state")
    if not isinstance(state, dict):
        fail("method_state", "is missing" if state is None else f"must be a mapping, got {_kind(state)}")
    networks = state.get("networks")
    if not isinstance(networks, dict) or not networks:
        fail("method_state.networks", "is missing or empty" if not networks else f"must be a mapping, got {_kind(networks)}")
    for net, tensors in networks.items():
        if not isinstance(tensors, dict) or not tensors:
            fail(f"method_state.networks.{net}", "must be a non-empty state dict of tensors")
        for key, value in tensors.items():
            field = f"method_state.networks.{net}.{key}"
            if not isinstance(value, torch.Tensor):
                fail(field, f"must be a tensor, got {_kind(value)}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                fail(field, "contains NaN or Inf (unflat never saves such weights)")
    for name, kind in (("optimizers", dict), ("extra", dict)):
        if name in state and not isinstance(state[name], kind):
            fail(f"method_state.{name}", f"must be a mapping, got {_kind(state[name])}")
    scale = state.get("lr_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        fail("method_state.lr_scale", f"must be a positive number, got {scale!r:.40}")


def stored_config(path: Path, config_cls: type, payload: dict) -> Any:
    """The run config stored in the checkpoint, as ``config_cls``; a field that does not fit is named."""
    from unflat.config import config_from_yaml  # noqa: PLC0415

    try:
        return config_from_yaml(config_cls, payload["config_yaml"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: field 'config_yaml' does not fit method '{payload['method']}' "
                              f"({config_cls.__name__}): {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: field 'config_yaml' does not fit method '{payload['method']}': {exc}") from None


def stored_dataset_info(payload: dict) -> Any:
    from unflat.data.format import DatasetInfo  # noqa: PLC0415

    known = {f.name for f in dataclasses.fields(DatasetInfo)}
    fields = {k: v for k, v in payload["dataset_info"].items() if k in known}
    fields["class_names"] = tuple(fields["class_names"])
    return DatasetInfo(**fields)


def check_networks_fit(path: Path, method_name: str, expected: dict[str, dict[str, torch.Tensor]],
                       stored: dict[str, dict[str, torch.Tensor]]) -> None:
    """Every network the method builds is in the checkpoint with the same tensor names and shapes."""
    for net, tensors in expected.items():
        if net not in stored:
            raise CheckpointError(f"{path}: field 'method_state.networks' has no network '{net}', which this unflat's "
                                  f"{method_name} builds (networks stored: {', '.join(map(str, stored)) or 'none'})")
        got = stored[net]
        for key, tensor in tensors.items():
            field = f"method_state.networks.{net}.{key}"
            if key not in got:
                raise CheckpointError(f"{path}: field '{field}' is missing (a checkpoint of another version or "
                                      f"configuration of {method_name}?)")
            if tuple(got[key].shape) != tuple(tensor.shape):
                raise CheckpointError(f"{path}: field '{field}' has shape {tuple(got[key].shape)}, this unflat's "
                                      f"{method_name} network expects {tuple(tensor.shape)}")
        extra = sorted(set(got) - set(tensors))
        if extra:
            raise CheckpointError(f"{path}: field 'method_state.networks.{net}.{extra[0]}' is not a tensor of this "
                                  f"unflat's {method_name} network ({len(extra)} unknown)")


def restore_method(path: Path, method: Any, state: dict) -> None:
    """Load ``state`` into ``method`` after checking its networks; a mismatch left (optimiser groups, extra
    state) is one line naming the file, not a torch traceback."""
    check_networks_fit(path, method.name, method.state_dict()["networks"], state["networks"])
    try:
        method.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{path}: field 'method_state' does not fit this unflat's {method.name} "
                              f"({type(exc).__name__}: {detail[:200]})") from None
