"""What the engine and a method agree on: the context a method runs in, the error a non-finite update raises,
and the parts of a method (``TrainableMethod``) and of its registry entry (``MethodEntry``) the engine calls.

The engine is handed a ``MethodEntry`` (``unflat.methods.registry.MethodSpec`` is one) and never looks a method up
or imports one: ``unflat.methods.base.Method`` implements ``TrainableMethod``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch
from torch import Tensor, nn

from unflat.config import RunConfig


class NonFiniteError(RuntimeError):
    """A loss or gradient was NaN/Inf; the update was not applied."""


@dataclass(frozen=True)
class TrainContext:
    """Where and how a method runs (filled in by the engine)."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None  # None = fp32
    compile: bool = False
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class TrainableMethod(Protocol):
    """The calls the engine makes on a method (training loop, checkpoints, samples, hooks)."""

    name: str
    lr_scale: float
    console_hidden_metrics: tuple[str, ...]

    @property
    def views_per_sample(self) -> int: ...

    def train_step(self, batch: Any, step: int) -> dict[str, float | Tensor]: ...

    def sample(self, n: int, seed: int) -> Any: ...  # an object with .images [n,3,H,W] in [-1,1]

    def set_learning_rates(self, step: int) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def parameters_by_network(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def histograms(self) -> dict[str, Tensor]: ...

    def on_train_end(self, run_dir: Path) -> dict[str, float]: ...


class MethodEntry(Protocol):
    """A registered method as the engine receives it."""

    name: str
    config_cls: type[RunConfig]
    method_cls: Any
    """Called as ``method_cls(cfg, info, ctx) -> TrainableMethod``; ``method_cls.builtin_data_info(cfg)`` gives the
    data of a method that makes its own (else None)."""


PeriodicEvaluator = Callable[[TrainableMethod, RunConfig, Path], Any]
"""``(method, cfg, run_dir) -> result with .scalars and .label, or None``: --eval-every's quick metrics."""
