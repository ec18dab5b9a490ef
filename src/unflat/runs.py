"""Training entry points for a registered method: ``train`` a new run, ``resume`` one, ``load_run`` a finished
one (from ``unflat.methods.registry``), and ``run_from_generator`` (`unflat dataset from-generator`), which
renders a loaded generator run into a dataset.

The engine (``unflat.engine.trainer``) is handed the method and the --eval-every evaluator from here; it never
looks either up.
"""

from __future__ import annotations

from pathlib import Path

from unflat.config import RunConfig
from unflat.data.format import check_dataset_destination, open_dataset
from unflat.data.from_generator import FromGeneratorConfig, write_from_generator
from unflat.engine.checkpoint import load_checkpoint, run_dir_of
from unflat.engine.trainer import Trainer, TrainResult, outside_run_message, resume_trainer
from unflat.errors import UserError
from unflat.evaluate import periodic_evaluation
from unflat.methods.registry import LoadedRun, MethodSpec, get_method
from unflat.zoo.load import load_run  # a run directory, a checkpoint or zoo:NAME


def train(spec: MethodSpec, cfg: RunConfig) -> TrainResult:
    """Train a new run of ``spec`` with ``cfg``."""
    return Trainer(spec, cfg, evaluator=periodic_evaluation).fit()


def resume(run: Path, overrides: dict | None = None, out: Path | None = None) -> TrainResult:
    """Continue a run from its latest checkpoint; ``overrides`` may change e.g. max_steps. ``out``: continue in a
    new run directory instead (the only way to resume a checkpoint file that is not inside a run)."""
    run = Path(run)
    payload = load_checkpoint(run)
    if out is None and run_dir_of(run) is None:
        raise UserError(outside_run_message(run))
    spec = get_method(payload["method"])
    return resume_trainer(spec, run, payload, overrides, out, evaluator=periodic_evaluation).fit()


def run_from_generator(cfg: FromGeneratorConfig) -> Path:
    """Load the generator run and write the dataset; returns its directory."""
    cfg.validate()
    check_dataset_destination(cfg.out, cfg.overwrite)  # before loading and rendering (the writer checks again)
    loaded = load_run(cfg.run, cfg.device)
    method = loaded.method
    for network in method.networks().values():
        network.eval()
    resolution = cfg.resolution or int(method.info.resolution)
    radius, fov = cfg.radius, cfg.fov
    if not radius or not fov:
        train_radius, train_fov = _training_camera_stats(loaded.cfg)
        radius = radius or train_radius
        fov = fov or train_fov
    source = {"generator_run": str(cfg.run), "generator_method": loaded.spec.name, "generator_step": loaded.step}
    out = write_from_generator(method, cfg, tuple(method.info.class_names), resolution, radius, fov, source)
    print(f"wrote {out}")
    return out


def _training_camera_stats(run_cfg: RunConfig) -> tuple[float, float]:
    """Median camera radius and FoV of the generator's training data, or (2.5, 30) without it."""
    data = run_cfg.data
    if data is not None:
        try:
            cameras = open_dataset(data).cameras
            _, _, radius = cameras.to_orbit()
            return float(radius.median()), float(cameras.fov_deg.median())
        except Exception:  # the training data may not be on this machine
            pass
    return 2.5, 30.0


__all__ = ["FromGeneratorConfig", "LoadedRun", "load_run", "resume", "run_from_generator", "train"]

