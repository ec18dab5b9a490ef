"""The method registry: a name -> (config class, method class, presets, one-line description).

Method modules register themselves on import; ``all_methods()`` imports the known modules lazily so
that `unflat --help` stays fast and a broken optional method cannot break the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from unflat.config import RunConfig
from unflat.errors import UserError

# Modules that define methods; each calls register(...) at import time.
METHOD_MODULES = (
    "unflat.methods.iggan",
    "unflat.methods.mvtriplane",
    "unflat.methods.tdgp",
    "unflat.methods.progressive",
    "unflat.methods.backbone",
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
