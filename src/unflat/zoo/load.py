"""A zoo model as a run: ``load_model(NAME)`` returns a ``LoadedRun`` (``ZooRun``) that generate, export, invert,
reconstruct, evaluate and from-generator use exactly as they use a trained run directory.

The method is rebuilt through the registry from the config the run wrote (stored in the manifest as it was), so
this module names no config field; then the shipped networks are loaded (cast up to fp32) into the networks
``Method.inference_networks`` maps them to, after checking every tensor's name and shape against the built method.
Networks training needs and inference does not (discriminators, optimisers) are not shipped: a zoo model
generates and reconstructs; it does not resume training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from unflat.methods.registry import LoadedRun, get_method
from unflat.methods.registry import load_run as load_run_dir
from unflat.zoo.args import ZOO_PREFIX
from unflat.zoo.format import Entry, ZooError, check_name, manifests_in, read_manifest, read_weights, search_dirs



@dataclass
class ZooRun(LoadedRun):
    """A ``LoadedRun`` restored from a zoo model; ``run_dir`` is the folder holding its files (read only)."""

    entry: Entry | None = None


def available() -> dict[str, Entry]:
    """Every model found, by name: ``UNFLAT_ZOO_DIR``'s folders override a shipped model of the same name.
    A manifest that does not parse is an error naming it (a zoo folder holds only models)."""
    found: dict[str, Entry] = {}
    for directory in reversed(search_dirs()):
        for path in manifests_in(directory):
            entry = read_manifest(path)
            found[entry.name] = entry
    return dict(sorted(found.items()))


def unknown_model_message(name: str, models: dict[str, Entry]) -> str:
    names = ", ".join(models) or "none: no model ships with this unflat yet and UNFLAT_ZOO_DIR names no folder of models"
    return f"unknown model '{name}' (available: {names}; `unflat models` lists them)"


def find_model(name: str) -> Entry:
    """The zoo entry called ``name``, or a path to a manifest (``DIR/NAME.json``)."""
    if name.endswith(".json") and Path(name).is_file():
        return read_manifest(Path(name))
    check_name(name)
    models = available()
    if name not in models:
        raise ZooError(unknown_model_message(name, models))
    return models[name]


def is_zoo_ref(run: object) -> bool:
    """True for ``zoo:NAME`` (that is not an existing path)."""
    text = str(run)
    return text.startswith(ZOO_PREFIX) and not Path(text).exists()


def load_model(name: str | Entry, device: str | torch.device = "cpu") -> ZooRun:
    """Zoo model ``name`` as a run, in fp32 on ``device`` (CPU by default; "auto" picks a GPU when there is one)."""
    from unflat.engine.checkpoint_schema import check_networks_fit, stored_config, stored_dataset_info
    from unflat.engine.context import TrainContext
    from unflat.engine.trainer import autocast_dtype, resolve_device

    entry = find_model(name) if isinstance(name, str) else name
    manifest, source = entry.manifest, entry.weights_path
    networks = read_weights(entry)  # sha256 first, then the tensors
    spec = get_method(manifest["method"])
    payload = {"method": spec.name, "config_yaml": _yaml(manifest["config"]), "dataset_info": manifest["dataset_info"]}
    cfg = stored_config(entry.manifest_path, spec.config_cls, payload)
    info = stored_dataset_info(payload)
    device = resolve_device(device) if isinstance(device, str) else device
    method = spec.method_cls(cfg, info, TrainContext(device, autocast_dtype(cfg.precision, device)))
    loads = inference_loads(method)
    if loads != manifest["loads"]:
        raise ZooError(f"{entry.manifest_path}: loads networks {manifest['loads']}, this unflat's {spec.name} needs "
                       f"{loads} (packed by another version of unflat?); re-pack it from its run")
    built = method.networks()
    expected = {source_net: _unwrap(built[target]).state_dict() for target, source_net in loads.items()}
    check_networks_fit(source, spec.name, expected, networks)
    for target, source_net in loads.items():
        module = _unwrap(built[target])
        state = module.state_dict()
        module.load_state_dict({k: networks[source_net][k].to(dtype=state[k].dtype) for k in state})
    method.load_extra_state(manifest["extra_state"])
    return ZooRun(spec, cfg, method, manifest["step"], entry.manifest_path.parent, entry)


def inference_loads(method) -> dict[str, str]:
    """{network: shipped network it is loaded from} of a built method (every network as itself by default)."""
    declared = getattr(type(method), "inference_networks", None)
    names = list(method.networks())
    if declared is None:
        return {name: name for name in names}
    unknown = sorted(set(declared) - set(names)) + sorted(set(declared.values()) - set(names))
    if unknown:
        raise ValueError(f"{type(method).__name__}.inference_networks names unknown networks {unknown}")
    return dict(declared)


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "_orig_mod", module)


def _yaml(config: dict) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False)


def load_run(run: "Path | str", device: "str | torch.device" = "auto") -> LoadedRun:
    """A trained method for generate, export, invert, reconstruct, evaluate, from-generator and view: a run
    directory or checkpoint file, or ``zoo:NAME``, a shipped model (what ``--model NAME`` passes)."""
    if is_zoo_ref(run):
        return load_model(str(run)[len(ZOO_PREFIX):], device)
    return load_run_dir(Path(run), device)
