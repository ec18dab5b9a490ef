"""The method registry: a name -> (config class, method class, presets, one-line description), and
``load_run``: the registered method a checkpoint names, restored.

Method modules register themselves on import; ``all_methods()`` imports the known modules lazily so
that `unflat --help` stays fast and a broken optional method cannot break the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from unflat.config import RunConfig
from unflat.errors import UserError

if TYPE_CHECKING:
    import torch

    from unflat.methods.base import Method

# Modules that define methods; each calls register(...) at import time.
METHOD_MODULES = (
    "unflat.methods.iggan",
    "unflat.methods.mvtriplane",
    "unflat.methods.tdgp",
    "unflat.methods.progressive",
    "unflat.methods.backbone",
    "unflat.methods.depth",
)

PRESETS = ("tiny", "small", "paper")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    description: str
    config_cls: type[RunConfig]
    method_cls: type
    presets: dict[str, Callable[[], RunConfig]]

    def config(self, preset: str = "small") -> RunConfig:
        if preset not in self.presets:
            raise UserError(f"method '{self.name}' has no preset '{preset}' (choose from {', '.join(self.presets)})")
        return self.presets[preset]()


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    missing = [p for p in PRESETS if p not in spec.presets]
    if missing:
        raise ValueError(f"method {spec.name} lacks presets {missing}")
    _REGISTRY[spec.name] = spec
    return spec


def all_methods() -> dict[str, MethodSpec]:
    for module in METHOD_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but something it needs is missing: surface it
                raise
    return dict(sorted(_REGISTRY.items()))


def get_method(name: str) -> MethodSpec:
    methods = all_methods()
    if name not in methods:
        known = ", ".join(methods) or "none yet"
        raise UserError(f"unknown method '{name}' (registered: {known})")
    return methods[name]


@dataclass
class LoadedRun:
    """A trained method restored from a run directory or checkpoint file."""

    spec: MethodSpec
    cfg: RunConfig
    method: "Method"
    step: int
    run_dir: Path


def load_run(run: Path, device: "str | torch.device" = "auto") -> LoadedRun:
    """Restore a trained method (for generate, export, invert, reconstruct, evaluate, from-generator, view)."""
    from unflat.engine.checkpoint import load_checkpoint, run_dir_of
    from unflat.engine.trainer import restore_method

    run = Path(run)
    payload = load_checkpoint(run)
    spec = get_method(payload["method"])
    cfg, method = restore_method(spec, payload, device)
    run_dir = run_dir_of(run) or run.absolute().parent  # read only (e.g. evaluate's metrics.jsonl)
    return LoadedRun(spec, cfg, method, int(payload["step"]), run_dir)
