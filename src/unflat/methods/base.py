"""The contracts a method declares, and the plumbing every method shares.

A method owns its networks and optimisers and knows how to take one training step (``Method``). The engine
(`unflat.engine.trainer`) knows nothing method-specific: it feeds batches, calls ``train_step``, logs,
checkpoints, samples and resumes through this interface, and calls its optional hooks (``histograms``,
``on_train_end``, ``builtin_data_info``, ``held_out_accuracy``), which do nothing unless a method overrides them.

What a method can do beyond training it declares by inheriting a contract (abstract bases, so a method that
forgets a part cannot be instantiated, and a command asks ``isinstance``, never ``hasattr``):

* ``Generator3D``: samples 3D content: ``generate`` (images, depth, meshes) and ``export`` (meshes).
* ``Invertible``: a tri-plane generator that PTI can invert (``invert``) and extract meshes from
  (``mesh_from_planes``); ``full_frame`` renders whole frames where training renders patches.
* ``Reconstructor``: image -> mesh (``reconstruct``) and its evaluation on posed views (``evaluate_views``).

Class-level facts: ``name``, ``kind`` ("method": one of the papers' methods; "helper": trains a part other
methods use, e.g. a feature backbone), ``learns_cameras`` (its own camera distribution is part of what is
evaluated), ``multiview_generator``, ``console_hidden_metrics``.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Iterator, Literal, Sequence

import torch
from torch import Tensor, nn

from unflat.cameras import Cameras
from unflat.config import RunConfig
from unflat.data.format import Dataset, DatasetInfo
from unflat.data.loader import Batch
from unflat.engine import distributed
from unflat.engine.context import NonFiniteError, TrainContext  # noqa: F401 - re-exported: every method builds with them


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
    kind: ClassVar[Literal["method", "helper"]] = "method"
    """"method": one of unflat's methods (a 3D generator or a reconstructor); "helper": trains a part other
    methods use (feature backbone, depth estimator, IG-GAN's proxy renderer)."""
    helper_use: ClassVar[str] = ""
    """Helpers: how their result is used instead of being evaluated (`unflat evaluate` says it)."""
    learns_cameras: ClassVar[bool] = False
    """True when the method learns its camera distribution (3DGP): its own cameras are part of what is evaluated."""
    Config: ClassVar[type[RunConfig]] = RunConfig
    multiview_generator: ClassVar[bool] = False
    """True for 3D generators whose ``sample(n, seed, cameras=<n*V cameras>)`` renders latent i from
    cameras i*V .. i*V+V-1 (what ``unflat dataset from-generator`` needs)."""
    console_hidden_metrics: ClassVar[tuple[str, ...]] = ()
    """Name prefixes of logged metrics the console's summary line leaves out (details such as timings of a
    step's parts); they still go to metrics.jsonl and TensorBoard."""
    background: str = "white"
    """What a generator renders behind its objects: "white", or (tri-plane methods trained on photos) "learned" /
    "none"; `dataset from-generator` records a non-white one as a wild dataset."""
    inference_networks: ClassVar[dict[str, str] | None] = None
    """What a zoo model (``unflat.zoo``) ships: {network: the shipped network it is loaded from}, for the networks
    generate/reconstruct/invert use (e.g. a GAN's EMA generator, loaded into both G and G_ema); networks left out
    (discriminators) are not shipped. None: every network, each as itself."""
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

    # ---- optional hooks (the engine calls them; the defaults do nothing) -------------------------
    @staticmethod
    def builtin_data_info(cfg: RunConfig) -> DatasetInfo | None:
        """The data a method makes itself when trained without --data (e.g. random shapes); None: it needs --data."""
        return None

    def histograms(self) -> dict[str, Tensor]:
        """Values to log as TensorBoard histograms at every log step (e.g. 3DGP's learned cameras)."""
        return {}

    def on_train_end(self, run_dir: Path) -> dict[str, float]:
        """Called once after the last step on the main process (e.g. the backbone writes its weights file);
        returns scalars to log."""
        return {}

    def held_out_accuracy(self) -> dict[str, float] | None:
        """A method's own held-out measure, logged by --eval-every instead of FID/KID; None: it has none."""
        return None

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

    def with_export_settings(self, **settings: float | int | str | None) -> None:
        """Apply `unflat export`'s mesh settings (None = keep the run's) to this loaded method's config; a setting
        the method does not have is a UserError naming the ones it has."""
        from unflat.config import replace_fields
        from unflat.errors import ConfigError, UserError

        given = {k: v for k, v in settings.items() if v is not None}
        unknown = sorted(set(given) - set(self.export_settings))
        if unknown:
            has = ", ".join(f"--{k.replace('_', '-')}" for k in self.export_settings) or "none"
            raise UserError(f"method '{self.name}' has no export setting --{unknown[0].replace('_', '-')} (it has: {has})")
        cfg = replace_fields(self.cfg, {self.export_settings[k]: v for k, v in given.items()})
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


class Generator3D(abc.ABC):
    """A 3D generator (iggan, mvtriplane, 3dgp): ``Method.sample`` renders it; these write its outputs."""

    @abc.abstractmethod
    def generate(self, out_dir: Path, num: int, seed: int, class_id: int | None = None) -> list[Path]:
        """`unflat generate`: images, depth and meshes of ``num`` samples (seeds seed..seed+num-1) into out_dir."""

    @abc.abstractmethod
    def export(self, out_dir: Path, num: int, seed: int, class_id: int | None = None,
               formats: tuple[str, ...] = ("glb",)) -> list[Path]:
        """`unflat export`: meshes of ``num`` samples in each of ``formats``."""


class Invertible(abc.ABC):
    """A tri-plane generator PTI can invert (mvtriplane, 3dgp): what `unflat invert` and the inversion metric use."""

    G_ema: nn.Module
    """The EMA generator PTI tunes a copy of."""
    output_resolution: int
    """Side of the rendered (super-resolved) image in pixels."""

    @abc.abstractmethod
    def invert(self, images: list[Path], out_dir: Path, steps_w: int = 500, steps_g: int = 350, **kwargs) -> list[Path]:
        """PTI inversion of each image into out_dir; returns the files written."""

    @abc.abstractmethod
    def invert_tensor(self, target: Tensor, feature_fn=None, classifier=None, label: str = "PTI", **settings):
        """PTI of one image [1,3,R,R] in [-1,1] (``settings``: PTISettings fields; ``label`` starts the progress
        lines) -> a result with the pivot
        ``ws``, the tuned ``generator``, ``azimuth``/``elevation`` and the class (the inversion metric's input)."""

    @abc.abstractmethod
    def mesh_from_planes(self, planes: Tensor, generator: nn.Module | None = None):
        """Marching-cubes mesh (trimesh.Trimesh) of one sample's tri-planes [1,3,C,R,R]."""

    def full_frame(self) -> contextlib.AbstractContextManager:
        """A context in which the generator renders whole frames (3DGP trains on patches); default: it always does."""
        return contextlib.nullcontext()


class Reconstructor(abc.ABC):
    """Image -> textured mesh (progressive)."""

    perceptual_features_used: str | None = None
    """The perceptual loss's features training used (recorded by `unflat evaluate`); None when unknown."""

    @abc.abstractmethod
    def reconstruct(self, images: Sequence[Path], out_dir: Path, masks: Sequence[Path] | None = None,
                    batch_size: int = 16, **kwargs) -> list[Path]:
        """`unflat reconstruct`: one mesh (and pictures) per image into out_dir; returns the files written."""

    @abc.abstractmethod
    def evaluate_views(self, data: Path, num_shapes: int = 64, seed: int = 0, batch_size: int = 16,
                       **kwargs) -> dict:
        """Reconstructions of a multi-view dataset's shapes at the input view and a novel view (`unflat evaluate`)."""


CONTRACTS: tuple[type, ...] = (Generator3D, Invertible, Reconstructor)


def contracts_of(method_cls: type) -> tuple[type, ...]:
    """The contracts a method class declares."""
    return tuple(c for c in CONTRACTS if issubclass(method_cls, c))


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "_orig_mod", module)
