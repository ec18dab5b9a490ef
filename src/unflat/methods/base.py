"""The small interface every method implements, and the plumbing they all share.

A method owns its networks and optimisers and knows how to take one training step. The engine
(`unflat.engine.trainer`) knows nothing method-specific: it feeds batches, calls ``train_step``,
logs, checkpoints, samples and resumes through this interface.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Iterator

import torch
from torch import Tensor, nn

from unflat.cameras import Cameras
from unflat.config import RunConfig
from unflat.data.format import Dataset, DatasetInfo
from unflat.data.loader import Batch
from unflat.engine import distributed


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


@dataclass
class Samples:
    """What ``Method.sample`` returns.

    images: [N,3,H,W] in [-1,1].  masks: [N,1,H,W] in [0,1].  depth: [N,1,H,W] camera z.
    cameras: the N cameras used.  class_ids: [N] or None.
    """

    images: Tensor
    cameras: Cameras | None = None
    masks: Tensor | None = None
    depth: Tensor | None = None
    class_ids: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class _Optimiser:
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    base_lrs: list[float]
    schedule: Callable[[int], float] | None


class Method(abc.ABC):
    """Base class for a registered method. Subclasses set ``name`` and implement train_step/sample."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[RunConfig]] = RunConfig
    multiview_generator: ClassVar[bool] = False
    """True for 3D generators whose ``sample(n, seed, cameras=<n*V cameras>)`` renders latent i from
    cameras i*V .. i*V+V-1 (what ``unflat dataset from-generator`` needs)."""
    console_hidden_metrics: ClassVar[tuple[str, ...]] = ()
    """Name prefixes of logged metrics the console's summary line leaves out (details such as timings of a
    step's parts); they still go to metrics.jsonl and TensorBoard."""
    export_settings: ClassVar[dict[str, str]] = {}
    """The mesh settings `unflat export` may change, as {export option: config field}: ``resolution`` (marching-cubes
    grid), ``level`` (iso-level of the surface), ``min_component`` (drop components under this share of the faces)."""

    def __init__(self, cfg: RunConfig, info: DatasetInfo, ctx: TrainContext) -> None:
        self.cfg = cfg
        self.info = info
        self.ctx = ctx
        self.device = ctx.device
        self._networks: dict[str, nn.Module] = {}
        self._optimisers: dict[str, _Optimiser] = {}
        self.lr_scale = 1.0  # lowered by the engine's rollback policy

    # ---- what a subclass implements ------------------------------------------------------------
    @property
    def views_per_sample(self) -> int:
        """Views of one shape each training sample needs (multi-view methods return > 1)."""
        return 1

    @abc.abstractmethod
    def train_step(self, batch: Batch, step: int) -> dict[str, float | Tensor]:
        """One update of every network; returns scalar losses/statistics to log."""

    @abc.abstractmethod
    def sample(self, n: int, seed: int, class_ids: Tensor | None = None, cameras: Cameras | None = None) -> Samples:
        """n samples, deterministic in ``seed``; at fixed cameras when given."""

    def setting_warnings(self, dataset: Dataset | None) -> list[str]:
        """One line per setting that cannot do what the user asked with this config and data (a schedule longer
        than max_steps, data the method does not fit); the engine says them once before training starts."""
        return []

    def training_phases(self) -> list[tuple[str, int]]:
        """(name, first step) of each phase of the schedule whose steps cost differently (e.g. pre-training then
        GAN): the progress ETA measures each phase's rate on its own. Empty: one phase."""
        return []

    def extra_state(self) -> dict:
        """Method-specific counters or buffers to checkpoint (tensors, numbers, strings, lists, dicts)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # ---- registration --------------------------------------------------------------------------
    def add_network(self, name: str, module: nn.Module, train: bool = True) -> nn.Module:
        """Register a network for checkpointing; returns it on the method's device."""
        module = module.to(self.device)
        if distributed.is_initialized():
            distributed.broadcast_parameters(module)
        module.train(train)
        self._networks[name] = module
        return module

    def add_optimizer(
        self,
        name: str,
        optimizer: torch.optim.Optimizer,
        schedule: Callable[[int], float] | None = None,
    ) -> torch.optim.Optimizer:
        """Register an optimiser; ``schedule(step)`` multiplies its base learning rates each step."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        base = [group["lr"] for group in optimizer.param_groups]
        self._optimisers[name] = _Optimiser(optimizer, params, base, schedule)
        return optimizer

    def networks(self) -> dict[str, nn.Module]:
        return dict(self._networks)

    def maybe_compile(self, module: nn.Module) -> nn.Module:
        """torch.compile'd view of a module when the config asks for it (weights stay shared)."""
        return torch.compile(module) if self.ctx.compile else module  # type: ignore[return-value]

    # ---- step plumbing ---------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.ctx.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.ctx.autocast_dtype)

    @staticmethod
    def due(every: int, step: int) -> bool:
        """Lazy regularisation helper: true every ``every`` steps (never when every <= 0)."""
        return every > 0 and step % every == 0

    def set_learning_rates(self, step: int) -> None:
        for entry in self._optimisers.values():
            factor = (entry.schedule(step) if entry.schedule else 1.0) * self.lr_scale
            for group, base in zip(entry.optimizer.param_groups, entry.base_lrs):
                group["lr"] = base * factor

    def optimize(self, name: str, loss: Tensor, retain_graph: bool = False) -> None:
        """Backward ``loss`` into optimiser ``name``'s parameters, average over ranks, check, clip, step.

        Raises NonFiniteError (before anything is applied) when the loss or the gradients are NaN/Inf.
        """
        entry = self._optimisers[name]
        if not torch.isfinite(loss.detach()).all():
            entry.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(f"{name}: loss is {loss.detach().float().sum().item()}")
        entry.optimizer.zero_grad(set_to_none=True)
        loss.backward(retain_graph=retain_graph, inputs=entry.params)
        self.apply_gradients(name)

    def apply_gradients(self, name: str) -> None:
        """Average, check, clip and apply the gradients already accumulated for optimiser ``name``."""
        entry = self._optimisers[name]
        if self.ctx.world_size > 1:
            distributed.average_gradients(entry.params)
        grads = [p.grad for p in entry.params if p.grad is not None]
        if grads:
            max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
            norm = torch.nn.utils.clip_grad_norm_(entry.params, max_norm)
            if not torch.isfinite(norm):
                entry.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteError(f"{name}: gradient norm is {norm.item()}")
        entry.optimizer.step()

    # ---- checkpoint state ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "networks": {k: _unwrap(m).state_dict() for k, m in self._networks.items()},
            "optimizers": {k: e.optimizer.state_dict() for k, e in self._optimisers.items()},
            "lr_scale": self.lr_scale,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for key, module in self._networks.items():
            if key not in state["networks"]:
                raise KeyError(f"checkpoint has no network '{key}'")
            _unwrap(module).load_state_dict(state["networks"][key])
        for key, entry in self._optimisers.items():
            entry.optimizer.load_state_dict(state["optimizers"][key])
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.load_extra_state(state.get("extra", {}))

    def parameters_by_network(self) -> Iterator[tuple[str, nn.Parameter]]:
        for key, module in self._networks.items():
            for pname, param in module.named_parameters():
                yield f"{key}.{pname}", param

    def with_export_settings(self, **settings: float | int | None) -> None:
        """Apply `unflat export`'s mesh settings (None = keep the run's) to this loaded method's config; a setting
        the method does not have is a UserError naming the ones it has."""
        from dataclasses import replace

        from unflat.errors import ConfigError, UserError

        given = {k: v for k, v in settings.items() if v is not None}
        unknown = sorted(set(given) - set(self.export_settings))
        if unknown:
            has = ", ".join(f"--{k.replace('_', '-')}" for k in self.export_settings) or "none"
            raise UserError(f"method '{self.name}' has no export setting --{unknown[0].replace('_', '-')} (it has: {has})")
        cfg = replace(self.cfg, **{self.export_settings[k]: v for k, v in given.items()})
        try:
            cfg.validate()
        except ConfigError as exc:  # name the export option the user typed, not the config field behind it
            option = next((k for k, f in self.export_settings.items() if f == exc.field), None)
            if option is None:
                raise
            raise UserError(f"--{option.replace('_', '-')}: {str(exc).split(': ', 1)[1]}") from None
        self.cfg = cfg

    def export(self, out_dir: Path, num: int, seed: int, class_id: int | None = None,
               formats: tuple[str, ...] = ("glb",)) -> list[Path]:
        """Write meshes for ``num`` samples; methods with 3D output override this."""
        from unflat.errors import UserError

        raise UserError(f"method '{self.name}' does not produce meshes (nothing to export)")


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "_orig_mod", module)
