"""The zoo's on-disk format: a model is ``NAME.safetensors`` (fp16 weights of the networks inference needs) and
``NAME.json`` (its manifest). This module reads, checks and writes the two files; it knows no method.

Reading is in this order, and each step fails with one line naming the file, what is wrong and how to fix it:
the manifest parses and has every field; the weights file's sha256 equals the manifest's (checked before a
single tensor is read, so a corrupted, truncated or swapped file is never deserialised); the safetensors header
names this model and method; every tensor is finite. Shape checks against the method come later
(``unflat.zoo.load``), once the method is built from the manifest's config.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unflat.errors import UserError
from unflat.jsonfile import read_json

FORMAT = "unflat-zoo"
FORMAT_VERSION = 1
KINDS = ("generator", "reconstructor", "helper")
ZOO_DIR_ENV = "UNFLAT_ZOO_DIR"
"""Extra folders of zoo models (``os.pathsep``-separated), searched before the models shipped with unflat."""
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "name": str, "method": str, "kind": str, "config": dict,
    "dataset_info": dict, "extra_state": dict, "networks": dict, "loads": dict, "weights": dict, "step": int,
    "parameters": int, "data_recipe": str, "commands": list, "git": dict, "metrics": list, "licences": list,
    "created": str, "unflat_version": str,
}
PACK_HINT = "re-install unflat (`pip install --force-reinstall unflat`) or re-pack it (`unflat models pack RUN --name NAME --out DIR`)"


class ZooError(UserError):
    """A zoo model is missing, corrupted, swapped or does not fit this unflat."""


def shipped_dir() -> Path:
    """Where the models that ship with unflat live (package data)."""
    return Path(__file__).resolve().parent / "shipped"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ZooError(f"model name {name!r} is not valid: use 1-64 lower-case letters, digits, '.', '_' or '-', "
                       "starting with a letter or digit (e.g. mvtriplane-6cat)")
    return name


def extra_dirs() -> list[Path]:
    """The folders ``UNFLAT_ZOO_DIR`` names, each checked to exist."""
    value = os.environ.get(ZOO_DIR_ENV, "")
    dirs = []
    for part in filter(None, value.split(os.pathsep)):
        path = Path(part).expanduser()
        if not path.is_dir():
            raise ZooError(f"{ZOO_DIR_ENV}={value}: {path} is not a folder; point it at folders of NAME.json + "
                           "NAME.safetensors made by `unflat models pack` (or unset it)")
        dirs.append(path)
    return dirs


def search_dirs() -> list[Path]:
    """``UNFLAT_ZOO_DIR``'s folders first (they may override a shipped model of the same name), then the shipped one."""
    return [*extra_dirs(), shipped_dir()]


def manifests_in(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.json") if p.is_file()) if Path(directory).is_dir() else []


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One model of the zoo: its manifest (checked) and where its two files are."""

    manifest_path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def method(self) -> str:
        return self.manifest["method"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def weights_path(self) -> Path:
        return self.manifest_path.with_name(self.manifest["weights"]["file"])

    @property
    def shipped(self) -> bool:
        return self.manifest_path.parent == shipped_dir()


def read_manifest(path: Path) -> Entry:
    """Parse and check ``NAME.json``; a ZooError naming the file and the field otherwise."""
    path = Path(path)

    def fail(problem: str) -> ZooError:
        return ZooError(f"{path}: {problem}; {PACK_HINT}")

    data = read_json(path, f"{path} (zoo manifest)", ZooError, PACK_HINT)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise fail(f"not an unflat zoo manifest (missing \"format\": \"{FORMAT}\")")
    if data.get("format_version") != FORMAT_VERSION:
        raise fail(f"zoo format_version {data.get('format_version')!r} is not supported by this unflat "
                   f"(it reads version {FORMAT_VERSION})")
    for field, kind in REQUIRED_FIELDS.items():
        if field not in data:
            raise fail(f"field '{field}' is missing")
        if not isinstance(data[field], kind) or isinstance(data[field], bool) and kind is int:
            raise fail(f"field '{field}' must be a {getattr(kind, '__name__', kind)}, got {type(data[field]).__name__}")
    if data["kind"] not in KINDS:
        raise fail(f"field 'kind' must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    if data["name"] != path.stem:
        raise fail(f"field 'name' is {data['name']!r} but the file is {path.name} (a renamed or swapped manifest): "
                   f"rename it back to {data['name']}.json")
    weights = data["weights"]
    for field, kind in (("file", str), ("sha256", str), ("bytes", int)):
        if not isinstance(weights.get(field), kind):
            raise fail(f"field 'weights.{field}' is missing or not a {kind.__name__}")
    if Path(weights["file"]).name != weights["file"] or not weights["file"].endswith(".safetensors"):
        raise fail(f"field 'weights.file' must be a .safetensors file name beside the manifest, got {weights['file']!r}")
    if not re.fullmatch(r"[0-9a-f]{64}", weights["sha256"]):
        raise fail("field 'weights.sha256' is not a sha256 hex digest")
    if not data["loads"] or not all(isinstance(k, str) and isinstance(v, str) and v in data["networks"]
                                    for k, v in data["loads"].items()):
        raise fail("field 'loads' must map each network to one of the shipped 'networks'")
    for i, metric in enumerate(data["metrics"]):
        if not isinstance(metric, dict) or not {"name", "value", "feature_network"} <= set(metric):
            raise fail(f"field 'metrics[{i}]' needs name, value and feature_network")
    return Entry(path, data)


def read_weights(entry: Entry) -> dict[str, dict[str, Tensor]]:
    """The shipped networks' tensors {network: {key: tensor}} as stored (fp16 mostly), after checking the file's
    size and sha256 against the manifest (before reading a tensor), its header and that every value is finite."""
    from safetensors import SafetensorError, safe_open

    path, expected = entry.weights_path, entry.manifest["weights"]
    fix = f"the file is corrupted, truncated or belongs to another model; {PACK_HINT}"
    if not path.is_file():
        raise ZooError(f"{path}: weights file of zoo model '{entry.name}' not found (its manifest is {entry.manifest_path}); {PACK_HINT}")
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise ZooError(f"{path}: {size} bytes, manifest {entry.manifest_path.name} says {expected['bytes']}: {fix}")
    digest = sha256_of(path)
    if digest != expected["sha256"]:
        raise ZooError(f"{path}: sha256 {digest[:16]}... does not match manifest {entry.manifest_path.name} "
                       f"({expected['sha256'][:16]}...): {fix}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta = handle.metadata() or {}
            flat = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ZooError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]}): {fix}") from None
    for field, want in (("format", FORMAT), ("name", entry.name), ("method", entry.method)):
        if meta.get(field) != want:
            raise ZooError(f"{path}: its header says {field} {meta.get(field)!r}, manifest {entry.manifest_path.name} "
                           f"says {want!r} (weights of another model under this manifest?): {fix}")
    networks: dict[str, dict[str, Tensor]] = {}
    for key, tensor in flat.items():
        net, _, param = key.partition(".")
        if not param:
            raise ZooError(f"{path}: tensor '{key}' is not named NETWORK.PARAMETER: {fix}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ZooError(f"{path}: tensor '{key}' contains NaN or Inf: {fix}")
        networks.setdefault(net, {})[param] = tensor
    if sorted(networks) != sorted(entry.manifest["networks"]):
        raise ZooError(f"{path}: holds networks {', '.join(sorted(networks))}, manifest {entry.manifest_path.name} "
                       f"lists {', '.join(sorted(entry.manifest['networks']))}: {fix}")
    return networks


def write_model(out_dir: Path, manifest: dict[str, Any], networks: dict[str, dict[str, Tensor]]) -> Entry:
    """Write ``NAME.safetensors`` then ``NAME.json`` (with the weights' sha256 and size) into ``out_dir``; each
    written to a temporary name and renamed, so a failed pack leaves no half model."""
    from safetensors.torch import save_file

    name = check_name(manifest["name"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights, manifest_path = out_dir / f"{name}.safetensors", out_dir / f"{name}.json"
    flat = {f"{net}.{key}": tensor.contiguous() for net, tensors in networks.items() for key, tensor in tensors.items()}
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "name": name, "method": manifest["method"]}
    tmp_weights, tmp_manifest = weights.with_name(f".{weights.name}.tmp"), manifest_path.with_name(f".{manifest_path.name}.tmp")
    try:
        save_file(flat, str(tmp_weights), metadata=meta)
        os.chmod(tmp_weights, 0o644)  # package data: readable by everyone (safetensors writes 0600)
        manifest = {**manifest, "weights": {"file": weights.name, "sha256": sha256_of(tmp_weights),
                                            "bytes": tmp_weights.stat().st_size, "dtype": "float16"}}
        tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp_weights, weights)
        os.replace(tmp_manifest, manifest_path)
    finally:
        tmp_weights.unlink(missing_ok=True)
        tmp_manifest.unlink(missing_ok=True)
    return read_manifest(manifest_path)
