"""The method registry: a name -> (config class, method class, presets, kind, one-line description), and
``load_run``: the registered method a checkpoint names, restored.

A method registers itself, in one place, with the ``register_method`` class decorator. ``all_methods()`` imports
every module of ``unflat.methods`` on first use (not at `unflat --help`), so a new method is one new module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal, TypeVar

from unflat.config import RunConfig
from unflat.errors import UserError

if TYPE_CHECKING:
    import torch

    from unflat.methods.base import Method

PRESETS = ("tiny", "small", "paper")
Preset = Callable[[], RunConfig]
M = TypeVar("M", bound=type)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    description: str
    config_cls: type[RunConfig]
    method_cls: type
    presets: Mapping[str, Preset]

    def config(self, preset: str = "small") -> RunConfig:
        if preset not in self.presets:
            raise UserError(f"method '{self.name}' has no preset '{preset}' (choose from {', '.join(self.presets)})")
        return self.presets[preset]()

    @property
    def kind(self) -> str:
        """"method" or "helper" (``unflat.methods.base.Method.kind``)."""
        return self.method_cls.kind


class _LazyPresets(Mapping):
    """The preset table of a decorated class, read from ``factory()`` on first use: the preset functions are
    module-level functions that may follow the class they configure."""

    def __init__(self, factory: Callable[[], Mapping[str, Preset]]) -> None:
        self._factory, self._table = factory, None

    def _resolved(self) -> Mapping[str, Preset]:
        if self._table is None:
            self._table = dict(self._factory())
        return self._table

    def __getitem__(self, key: str) -> Preset:
        return self._resolved()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Register a spec (what ``register_method`` does; tests register toy methods with it)."""
    if not isinstance(spec.presets, _LazyPresets):
        _check_presets(spec)
    _REGISTRY[spec.name] = spec
    return spec


def register_method(name: str, *, config: type[RunConfig], description: str,
                    presets: Callable[[], Mapping[str, Preset]], kind: Literal["method", "helper"] = "method",
                    ) -> Callable[[M], M]:
    """Class decorator: register a method under ``name`` with its config class, its presets (a function returning
    {"tiny": f, "small": f, "paper": f}, called on first use) and its kind; sets the class's ``name``, ``kind``
    and ``Config``::

        @register_method("mvtriplane", config=MVTriplaneConfig, description="...",
                         presets=lambda: {"tiny": tiny, "small": small, "paper": paper})
        class MVTriplane(TriplaneGAN): ...
    """

    def decorate(cls: M) -> M:
        cls.name, cls.kind, cls.Config = name, kind, config
        register(MethodSpec(name, description, config, cls, _LazyPresets(presets)))
        return cls

    return decorate


def get_method_spec(cls: type) -> MethodSpec:
    """The spec ``register_method`` registered for ``cls``."""
    found = _REGISTRY.get(cls.name)
    if found is None or found.method_cls is not cls:
        raise KeyError(f"{cls.__qualname__} is not a registered method")
    return found


def _check_presets(spec: MethodSpec) -> None:
    missing = [p for p in PRESETS if p not in spec.presets]
    if missing:
        raise ValueError(f"method {spec.name} lacks presets {missing}")


def all_methods() -> dict[str, MethodSpec]:
    import unflat.methods

    for module in pkgutil.iter_modules(unflat.methods.__path__, "unflat.methods."):
        importlib.import_module(module.name)
    for spec in _REGISTRY.values():
        _check_presets(spec)
    return dict(sorted(_REGISTRY.items()))


def method_specs_by_kind() -> dict[str, dict[str, MethodSpec]]:
    """{"method": {...}, "helper": {...}}: what `unflat train --help` lists apart."""
    grouped: dict[str, dict[str, MethodSpec]] = {"method": {}, "helper": {}}
    for name, spec in all_methods().items():
        grouped[spec.kind][name] = spec
    return grouped


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
    """Restore a trained method from a run directory or checkpoint file. Commands load through
    :func:`unflat.runs.load_run`, which also takes ``zoo:NAME`` (a shipped model)."""
    from unflat.engine.checkpoint import checkpoint_file, load_checkpoint, run_dir_of
    from unflat.engine.trainer import restore_method

    run = Path(run)
    payload = load_checkpoint(run)
    spec = get_method(payload["method"])
    cfg, method = restore_method(spec, payload, device, source=checkpoint_file(run))
    run_dir = run_dir_of(run) or run.absolute().parent  # read only (e.g. evaluate's metrics.jsonl)
    return LoadedRun(spec, cfg, method, int(payload["step"]), run_dir)
