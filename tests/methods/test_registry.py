"""One decorator registers a method (name, config, presets, kind) in one place; every module of unflat.methods is
found without a list of them; `unflat train --help` lists the helpers apart from the methods."""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass

import pytest

import unflat.methods
from unflat import cli
from unflat.config import RunConfig
from unflat.methods import registry
from unflat.methods.base import Method
from unflat.methods.registry import all_methods, get_method, get_method_spec, register_method


@dataclass
class _Config(RunConfig):
    width: int = 1
    """A field."""


@pytest.fixture
def scratch_registry():
    """Methods a test registers leave the registry with it (unflat's own are all imported first: a module
    registers on its first import only)."""
    before = dict(all_methods())
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


def test_the_decorator_sets_the_class_facts_and_reads_presets_defined_after_the_class(scratch_registry):
    @register_method("decorated-helper", config=_Config, kind="helper", description="a helper for this test",
                     presets=lambda: {"tiny": make_tiny, "small": make_tiny, "paper": make_tiny})
    class Decorated(Method):
        def train_step(self, batch, step):
            return {}

        def sample(self, n, seed, class_ids=None, cameras=None):
            raise NotImplementedError

    def make_tiny() -> _Config:  # defined after the class: the preset table is read on first use
        return _Config(width=3)

    assert (Decorated.name, Decorated.kind, Decorated.Config) == ("decorated-helper", "helper", _Config)
    spec = get_method("decorated-helper")
    assert spec is get_method_spec(Decorated) and spec.method_cls is Decorated and spec.config_cls is _Config
    assert spec.kind == "helper" and spec.description == "a helper for this test"
    assert spec.config("tiny") == _Config(width=3)
    assert "decorated-helper" in registry.method_specs_by_kind()["helper"]


def test_a_method_without_the_three_presets_is_refused(scratch_registry):
    @register_method("no-paper", config=_Config, description="lacks a preset", presets=lambda: {"tiny": _Config})
    class NoPaper(Method):
        def train_step(self, batch, step):
            return {}

        def sample(self, n, seed, class_ids=None, cameras=None):
            raise NotImplementedError

    with pytest.raises(ValueError, match="no-paper lacks presets"):
        all_methods()


def test_every_module_of_unflat_methods_is_found_and_each_registered_class_once():
    found = {spec.method_cls.__module__ for spec in all_methods().values() if spec.method_cls.__module__.startswith("unflat.")}
    modules = {m.name for m in pkgutil.iter_modules(unflat.methods.__path__, "unflat.methods.")}
    assert found <= modules and {"unflat.methods.depth", "unflat.methods.backbone", "unflat.methods.iggan"} <= found
    classes = [spec.method_cls for spec in all_methods().values()]
    assert len(classes) == len(set(classes))


def test_train_help_lists_the_helpers_apart(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    methods, helpers = text.split("\nmethods:\n")[1].split("\nhelpers")
    by_kind = registry.method_specs_by_kind()
    for name in ("iggan", "mvtriplane", "3dgp", "progressive"):
        assert f"  {name} " in methods and name in by_kind["method"]
    for name in ("backbone", "depth", "iggan-renderer"):
        assert f"  {name} " in helpers and f"  {name} " not in methods and name in by_kind["helper"]
