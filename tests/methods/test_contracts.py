"""Every registered method satisfies the contracts it declares (``unflat.methods.base``): it can be built, each
contract's methods are implemented with the contract's parameters, and the instance carries the contract's
attributes. The commands ask ``isinstance`` against these contracts, so a method that declares one must keep it."""

from __future__ import annotations

import inspect
import typing
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from unflat.data.format import open_dataset
from unflat.methods.base import CONTRACTS, Generator3D, Invertible, Method, Reconstructor, TrainContext, contracts_of
from unflat.methods.registry import all_methods

pytestmark = pytest.mark.usefixtures("one_thread")
# unflat's own methods (tests register toy methods of their own into the same registry)
METHODS = {name: spec for name, spec in all_methods().items() if spec.method_cls.__module__.startswith("unflat.")}


def _abstract_members(contract: type) -> list[str]:
    return sorted(contract.__abstractmethods__)


def _named_parameters(fn) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_registered_method_is_a_concrete_method_with_its_facts(name: str):
    cls = METHODS[name].method_cls
    assert issubclass(cls, Method)
    assert not inspect.isabstract(cls), f"{name} leaves {sorted(cls.__abstractmethods__)} unimplemented"
    assert cls.name == name
    assert cls.kind in ("method", "helper")
    assert isinstance(cls.learns_cameras, bool) and isinstance(cls.multiview_generator, bool)
    if cls.kind == "method":  # a method makes 3D content or reconstructs it
        assert contracts_of(cls) and set(contracts_of(cls)) & {Generator3D, Reconstructor}
    else:  # a helper trains a part for the others: no user-facing 3D command takes its run
        assert contracts_of(cls) == ()
    if cls.multiview_generator:  # `unflat dataset from-generator` renders a generator's latents
        assert issubclass(cls, Generator3D)


@pytest.mark.parametrize("name, contract", [(n, c) for n in sorted(METHODS) for c in contracts_of(METHODS[n].method_cls)],
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_declared_contract_methods_take_the_contract_parameters(name: str, contract: type):
    cls = METHODS[name].method_cls
    for member in _abstract_members(contract):
        wanted = _named_parameters(getattr(contract, member))
        given = _named_parameters(getattr(cls, member))
        assert given[: len(wanted)] == wanted, f"{name}.{member}{given} does not start with {wanted}"


def test_the_four_methods_declare_what_the_commands_need():
    declared = {n: set(contracts_of(s.method_cls)) for n, s in METHODS.items() if s.method_cls.kind == "method"}
    assert declared == {"iggan": {Generator3D}, "mvtriplane": {Generator3D, Invertible},
                        "3dgp": {Generator3D, Invertible}, "progressive": {Reconstructor}}
    assert [n for n, s in METHODS.items() if s.method_cls.learns_cameras] == ["3dgp"]
    assert {n for n, s in METHODS.items() if s.method_cls.kind == "helper"} >= {"backbone", "depth", "iggan-renderer"}


def test_every_contract_is_an_abstract_base_with_abstract_members():
    for contract in CONTRACTS:
        assert inspect.isabstract(contract) and _abstract_members(contract)


@pytest.mark.parametrize("name", [n for n, s in sorted(METHODS.items()) if issubclass(s.method_cls, Invertible)])
def test_invertible_instances_carry_the_contract_attributes(name: str, sphere_dataset: Path):
    spec = METHODS[name]
    torch.manual_seed(0)
    cfg = replace(spec.config("tiny"), data=sphere_dataset, device="cpu")
    method = spec.method_cls(cfg, open_dataset(sphere_dataset).info, TrainContext(torch.device("cpu")))
    hints = typing.get_type_hints(Invertible)
    assert set(hints) == {"G_ema", "output_resolution"}
    assert isinstance(method.G_ema, torch.nn.Module)
    with method.full_frame():  # whole frames at output_resolution: what PTI and the inversion metric render
        images = method.sample(1, seed=0).images
    assert isinstance(method.output_resolution, int) and images.shape[-2:] == (method.output_resolution,) * 2
