"""The training engine shared by every method: one readable loop.

Determinism: the data order (see ``unflat.data.loader``) and the random state are pure functions of
(seed, rank, step) — the torch RNG is re-seeded from them at the start of every step — so resuming
from a checkpoint reproduces an uninterrupted run bit for bit on CPU without saving loader or RNG
state, and every DDP rank draws different noise.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import shutil
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import imageio.v3 as imageio
import numpy as np
import torch

from unflat.config import RunConfig, config_to_yaml, run_config_text
from unflat.data.format import DatasetInfo, open_dataset
from unflat.data.loader import Batch, StepSampler, iterate_batches
from unflat.engine import distributed
from unflat.engine.checkpoint import (
    checkpoint_file,
    estimate_checkpoint_bytes,
    is_run_dir,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    run_dir_of,
    save_checkpoint,
)
from unflat.engine.checkpoint_schema import restore_method as restore_checked, stored_config, stored_dataset_info
from unflat.engine.runlock import RunLock
from unflat.engine.logger import MetricsLogger, ScalarAverager, close_run_log, open_run_log
from unflat.engine.progress import TrainingProgress, console, phase_at, warn
from unflat.errors import ConfigError, UserError
from unflat.engine.context import MethodEntry, NonFiniteError, PeriodicEvaluator, TrainableMethod, TrainContext

NUM_SAMPLES = 16


class TrainingDiverged(UserError):
    """Losses or gradients became NaN/Inf and the configured policy gave up."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool = False


# ---------------------------------------------------------------------------------------------
# Device, precision, seeds
# ---------------------------------------------------------------------------------------------
def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is visible to PyTorch (use --device cpu)")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: Apple MPS is not available here (use --device cpu)")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"--device {name}: not a device; use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UserError(f"--device {name}: no such CUDA GPU here ({torch.cuda.device_count()} visible; use --device cpu)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {name}: unflat runs on cpu, cuda or mps")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def make_context(cfg: RunConfig, local_rank: int = 0, rank: int = 0, world_size: int = 1) -> TrainContext:
    device = resolve_device(cfg.device, local_rank)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
        torch.backends.cudnn.benchmark = True
    return TrainContext(device, autocast_dtype(cfg.precision, device), cfg.compile, rank, world_size)


# ---------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------
def default_run_dir(method_name: str) -> Path:
    return Path("runs") / f"{method_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def write_run_config(run_dir: Path, method_name: str, cfg: RunConfig) -> None:
    (run_dir / "config.yaml").write_text(run_config_text(method_name, cfg))
    (run_dir / "method.txt").write_text(method_name + "\n")


def dataset_info_for(spec: MethodEntry, cfg: RunConfig) -> DatasetInfo:
    if cfg.data is None:
        builtin = spec.method_cls.builtin_data_info(cfg)
        if builtin is None:
            raise UserError(f"--data is required for method '{spec.name}' (make a dataset with `unflat dataset synth`)")
        return builtin
    return open_dataset(cfg.data).info


def _preflight(run_dir: Path, method: TrainableMethod, fresh: bool) -> RunLock:
    """Fail before training, and before writing anything into an existing run, if the run directory
    is a folder of the user's (not a run), cannot be written, is locked by another training process,
    already holds another run (a new run would overwrite its latest.pt), or the disk cannot hold the
    checkpoints. Returns the run directory's lock, held: the caller releases it."""
    if fresh and run_dir.is_dir() and any(run_dir.iterdir()) and not is_run_dir(run_dir):
        raise UserError(f"{run_dir}: folder is not empty and is not an unflat run directory (no method.txt), so a run "
                        "would write config.yaml, run.log, metrics.jsonl and checkpoints/ among your files; choose a "
                        "new --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: exists and is a file, not a folder; choose a new --out (unflat will not replace it)")
    probe = run_dir / f".unflat-write-test-{os.getpid()}"  # a name no user file has
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{run_dir}: run directory is not writable ({exc.strerror or exc}); choose another --out") from None
    lock = RunLock(run_dir).acquire()  # before looking at the run: another process may be writing it
    try:
        _check_run_dir(run_dir, method, fresh)
    except BaseException:
        lock.release()
        raise
    return lock


def _check_run_dir(run_dir: Path, method: TrainableMethod, fresh: bool) -> None:
    steps = list_checkpoints(run_dir)
    trained = [p.name for p in steps if p.name != "step-00000000.pt"]  # step 0 holds only the initial weights
    if fresh and (trained or (not steps and latest_checkpoint(run_dir) is not None)):
        raise UserError(f"{run_dir} already holds a trained run ({(trained or ['latest.pt'])[-1]}); continue it with "
                        f"`unflat train --resume {run_dir}` or choose another --out")
    need = 3 * estimate_checkpoint_bytes(method.state_dict()) + (64 << 20)
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise UserError(
            f"{run_dir}: only {free / 2**20:.0f} MiB free, checkpoints need about {need / 2**20:.0f} MiB; "
            "free disk space or choose another --out"
        )


def _check_same_data(recorded: object, info: DatasetInfo, data: Path) -> list[str]:
    """Resume: the dataset must be the one the checkpoint was trained on. Another resolution, other classes or
    masks/depth appearing or vanishing are refused (the networks would crash or silently learn other data); other
    image or shape counts are allowed and returned as notes for run.log."""
    if not isinstance(recorded, dict):
        return []
    strict = ("resolution", "class_names", "has_masks", "has_depth", "background")  # background: which networks exist
    loose = ("num_images", "num_shapes", "views_per_shape")
    changed, notes = [], []
    for name in strict + loose:
        if name not in recorded:
            continue
        old, new = recorded[name], getattr(info, name)
        if name == "class_names":
            old, new = tuple(old), tuple(new)
            shown = f"{len(old)} classes -> {len(new)}" if len(old) != len(new) else f"class names {list(old)} -> {list(new)}"
        else:
            shown = f"{name} {old} -> {new}"
        if old != new:
            (changed if name in strict else notes).append(shown)
    if changed:
        raise UserError(f"{data}: the dataset is not the one this run was trained on ({'; '.join(changed)}); re-create "
                        "it as it was to resume, or start a new run on this data with another --out")
    return [f"the dataset changed since the checkpoint: {', '.join(notes)}"] if notes else []


def _check_batch_size(cfg: RunConfig, items: int, what: str, world_size: int) -> None:
    """One step takes batch_size x world_size distinct items of the dataset; more is refused before any work."""
    if cfg.batch_size * world_size > items:
        per_rank = items // world_size
        ranks = f" on each of {world_size} processes" if world_size > 1 else ""
        raise ConfigError("batch_size", f"{cfg.batch_size}{ranks} is more than the {items} {what} of {cfg.data}; "
                          f"choose --batch-size {per_rank} or less, or make a larger dataset")


# ---------------------------------------------------------------------------------------------
# Signals: Ctrl-C / SIGTERM -> checkpoint, then exit
# ---------------------------------------------------------------------------------------------
_WATCHDOG = """
import os, select, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; this one only counts
signal.signal(signal.SIGTERM, signal.SIG_IGN)
fd, parent, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
seen = 0
while seen < 2:
    data = os.read(fd, 64)
    if not data:
        sys.exit(0)  # the trainer closed the pipe (training over) or died
    seen += sum(1 for b in data if b in (signal.SIGINT, signal.SIGTERM))
deadline = time.monotonic() + grace
while (left := deadline - time.monotonic()) > 0:
    if select.select([fd], [], [], left)[0] and not os.read(fd, 64):
        sys.exit(0)  # it unwound in time
os.write(2, b"unflat: a second signal and the step did not return; killed it (the last checkpoint is intact)\\n")
os.kill(parent, signal.SIGKILL)
"""


class StopFlag:
    """First SIGINT/SIGTERM: finish the step, write a checkpoint, exit 130. Second one: stop now.

    The second signal raises KeyboardInterrupt at once (checkpoints are atomic: the previous one is intact).
    A step stuck in C code that holds the GIL never returns to Python, where signal handlers (and every other
    Python thread) run, so a small watchdog process reads the signals from the interpreter's wakeup pipe (the
    C-level handler writes there at once) and SIGKILLs the trainer ``FORCE_EXIT_AFTER_S`` seconds after the
    second signal if it has not ended by then."""

    FORCE_EXIT_AFTER_S = 3.0

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._write_fd: int | None = None
        self._previous_fd = -1
        self._watchdog = None

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
            self._start_watchdog()
        return self

    def _start_watchdog(self) -> None:
        import subprocess

        try:
            read_fd, write_fd = os.pipe()
        except OSError:  # pragma: no cover - out of file descriptors: the Python handler alone
            return
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(read_fd), str(os.getpid()), str(self.FORCE_EXIT_AFTER_S)],
                pass_fds=(read_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            os.set_blocking(write_fd, False)
            self._previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
            self._write_fd = write_fd
        except (OSError, ValueError):  # pragma: no cover - cannot start it: the Python handler alone
            os.close(write_fd)
        finally:
            os.close(read_fd)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:  # second Ctrl-C or SIGTERM: stop now
            raise KeyboardInterrupt
        self.signum = signum
        console.print(f"[yellow]received {signal.Signals(signum).name}: finishing this step, writing a checkpoint, then "
                      "exiting (send it again to stop at once)")

    def __exit__(self, *exc: object) -> None:
        if self._write_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            os.close(self._write_fd)  # the watchdog reads EOF and ends
            self._write_fd = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout=0.5)  # it reads EOF at once (later if forked loader workers hold the pipe)
            except Exception:  # noqa: BLE001 - it ends on its own; never hold up the exit for it
                pass
            self._watchdog = None
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, spec: MethodEntry, cfg: RunConfig, resume_from: Path | None = None,
                 run_dir: Path | None = None, resume_payload: dict | None = None,
                 evaluator: PeriodicEvaluator | None = None) -> None:
        """``resume_from``: a run directory or checkpoint to continue; ``run_dir``: where to write (default: the
        run the checkpoint belongs to; a new directory continues the weights there). ``evaluator``: what
        --eval-every runs (``unflat.runs`` passes ``unflat.evaluate.periodic_evaluation``); None: nothing."""
        cfg.validate()
        self.spec, self.cfg, self.evaluator = spec, cfg, evaluator
        rank, local_rank, world = distributed.init_from_env(
            "cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        )
        self.ctx = make_context(cfg, local_rank, rank, world)
        if resume_from is not None and resume_payload is None:
            resume_payload = load_checkpoint(resume_from)
        self.resume_payload = resume_payload
        self.new_run_dir = resume_from is None or run_dir is not None  # nothing of a run there may be replaced
        if run_dir is not None:
            self.run_dir = Path(run_dir)
        elif resume_from is not None:
            found = run_dir_of(Path(resume_from))
            if found is None:
                raise UserError(outside_run_message(Path(resume_from)))
            self.run_dir = found
        else:
            self.run_dir = Path(cfg.out) if cfg.out is not None else default_run_dir(spec.name)
        self.run_dir = self._agree_on_run_dir(self.run_dir)
        self.info = dataset_info_for(spec, cfg)
        self.data_notes: list[str] = []
        if self.resume_payload is not None and cfg.data is not None:
            self.data_notes = _check_same_data(self.resume_payload.get("dataset_info"), self.info, cfg.data)
        if cfg.data is not None:  # before any work: a batch larger than the data is a mistake, and a huge one hangs
            _check_batch_size(cfg, self.info.num_images, "images", self.ctx.world_size)
        torch.manual_seed(cfg.seed)  # same initial weights on every rank (and broadcast anyway)
        self.method: TrainableMethod = spec.method_cls(cfg, self.info, self.ctx)
        if cfg.data is not None and self.method.views_per_sample > 1:  # fail now, not at the first batch
            sampler = StepSampler(open_dataset(cfg.data), cfg.batch_size, cfg.seed,
                                  views_per_sample=self.method.views_per_sample)
            _check_batch_size(cfg, sampler.num_items, f"shapes with {self.method.views_per_sample} views",
                              self.ctx.world_size)
        self.step = 0
        self.images_seen = 0  # summed per step, so a resume on another world size keeps the count exact
        self.rollbacks = 0
        if self.resume_payload is not None:
            self._restore(self.resume_payload, Path(resume_from) if resume_from is not None else self.run_dir)
        self.logger: MetricsLogger | None = None
        self.lock: RunLock | None = None

    # -- setup helpers --
    def _agree_on_run_dir(self, run_dir: Path) -> Path:
        if distributed.is_initialized():
            box = [str(run_dir)]
            torch.distributed.broadcast_object_list(box, src=0)
            run_dir = Path(box[0])
        return run_dir

    @property
    def is_main(self) -> bool:
        return self.ctx.rank == 0

    def _restore(self, payload: dict, source: Path) -> None:
        if payload["method"] != self.spec.name:
            raise UserError(f"checkpoint is for method '{payload['method']}', not '{self.spec.name}'")
        restore_checked(checkpoint_file(source), self.method, payload["method_state"])
        self.step = int(payload["step"])
        self.images_seen = int(payload.get("images_seen", self.step * self.cfg.batch_size * self.ctx.world_size))
        self.rollbacks = int(payload.get("rollbacks", 0))

    def _payload(self) -> dict:
        return {
            "method": self.spec.name,
            "config_yaml": config_to_yaml(self.cfg),
            "dataset_info": dataclasses.asdict(self.info),
            "step": self.step,
            "images_seen": self.images_seen,
            "world_size": self.ctx.world_size,
            "rollbacks": self.rollbacks,
            "method_state": self.method.state_dict(),
        }

    def check_weights(self) -> None:
        """Raise NonFiniteError if an update overflowed a weight to NaN/Inf (losses and gradients are checked
        at every update; weights at every checkpoint). Every rank checks: DDP keeps weights identical."""
        params = [param for _, param in self.method.parameters_by_network()]
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            bad = next(name for name, p in self.method.parameters_by_network() if not torch.isfinite(p).all())
            raise NonFiniteError(f"weights of {bad} are NaN/Inf")

    def save(self) -> None:
        if not self.is_main:
            return
        for name, param in self.method.parameters_by_network():
            if not torch.isfinite(param).all():
                raise TrainingDiverged(f"weights of {name} are NaN/Inf at step {self.step}; not overwriting the last good checkpoint")
        save_checkpoint(self.run_dir, self._payload(), self.step, self.cfg.keep_checkpoints)

    def _batches(self, first_step: int) -> Iterator[Batch | None]:
        if self.cfg.data is None:
            return itertools.repeat(None)
        return iterate_batches(
            self.cfg.data, first_step, self.cfg.max_steps, self.cfg.batch_size, self.cfg.seed, self.ctx.device,
            self.ctx.rank, self.ctx.world_size, self.method.views_per_sample, self.cfg.num_workers,
        )

    def write_samples(self) -> None:
        if not self.is_main:
            return
        from unflat.export.images import make_grid, to_uint8, with_caption

        samples = self.method.sample(NUM_SAMPLES, seed=self.cfg.seed)
        grid = make_grid(to_uint8(samples.images, (-1.0, 1.0)), nrow=int(math.ceil(math.sqrt(len(samples.images)))))
        phase = phase_at(self.method.training_phases(), self.step - 1)
        if phase:  # e.g. IG-GAN's pre-training grids show an untrained G: say which phase they are from
            grid = with_caption(grid, f"step {self.step}: {phase}")
        path = self.run_dir / "samples" / f"step-{self.step:08d}.png"
        path.parent.mkdir(exist_ok=True)
        imageio.imwrite(path, grid)
        if self.logger is not None:
            self.logger.image("samples", grid, self.step)

    def evaluate(self) -> None:
        """--eval-every: quick metrics (the ``evaluator``'s), logged on rank 0."""
        if not self.is_main or self.evaluator is None:
            return
        result = self.evaluator(self.method, self.cfg, self.run_dir)
        if result is not None and self.logger is not None:
            self.logger.scalars(self.step, result.scalars, event=result.label)

    def finish(self) -> None:
        """A method's ``on_train_end(run_dir) -> scalars`` (e.g. the backbone writes its weights file)."""
        if not self.is_main:
            return
        values = self.method.on_train_end(self.run_dir)
        if values and self.logger is not None:
            self.logger.scalars(self.step, values, event="end of training")

    # -- divergence --
    def _on_non_finite(self, error: NonFiniteError, log) -> Iterator[Batch | None]:
        message = f"non-finite values at step {self.step}: {error}"
        log.warning(message)
        if self.logger:
            self.logger.scalars(self.step, {}, event=f"non-finite: {error}")
        if self.cfg.nan_policy == "stop" or self.rollbacks >= self.cfg.max_rollbacks:
            latest = latest_checkpoint(self.run_dir)
            raise TrainingDiverged(f"{message}; stopped. Last good checkpoint: {latest} (try a lower learning rate, "
                                   "or --nan-policy rollback)")
        payload = load_checkpoint(self.run_dir)
        # the checkpoint predates this failure: carry the rollback count and the lowered rates across the restore
        rollbacks, lr_scale = self.rollbacks + 1, self.method.lr_scale * self.cfg.rollback_lr_factor
        self._restore(payload, self.run_dir)
        self.rollbacks, self.method.lr_scale = rollbacks, lr_scale
        note = f"rollback {self.rollbacks}: back to step {self.step}, learning rates x{self.method.lr_scale:g}"
        console.print(f"[yellow]{note}")
        log.warning(note)
        if self.logger:
            self.logger.scalars(self.step, {"lr_scale": self.method.lr_scale}, event=note)
        return self._batches(self.step)

    def fit(self) -> TrainResult:
        try:
            return self._fit()
        finally:
            close_run_log()  # later runs and commands in this process must not write into this run.log
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _fit(self) -> TrainResult:
        cfg = self.cfg
        if self.is_main:
            self.lock = _preflight(self.run_dir, self.method, fresh=self.new_run_dir)
            write_run_config(self.run_dir, self.spec.name, cfg)
        distributed.barrier()
        log = open_run_log(self.run_dir, self.ctx.device) if self.is_main else _null_logger()
        self.logger = MetricsLogger(self.run_dir, cfg.tensorboard) if self.is_main else None
        log.info("%s %s at step %d of %d, world size %d", "resuming" if self.resume_payload else "starting",
                 self.spec.name, self.step, cfg.max_steps, self.ctx.world_size)
        for note in self.data_notes:
            log.warning(note)
            if self.is_main:
                console.print(f"[yellow]{note}")
        if self.is_main and self.step < cfg.max_steps:  # said once, before the first step
            for note in self.method.setting_warnings(open_dataset(cfg.data) if cfg.data is not None else None):
                warn(note, log)
        if self.new_run_dir and self.is_main:
            self.save()  # step 0 (or the resumed step in a new directory): proves the disk takes a checkpoint and gives rollback a target
        averager = ScalarAverager()
        already_done = self.step >= cfg.max_steps
        batches = self._batches(self.step)
        interrupted = False
        last_saved = self.step
        images_per_step = cfg.batch_size * self.ctx.world_size
        with StopFlag() as stop, TrainingProgress(cfg.max_steps, self.step, images_per_step, f"train {self.spec.name}",
                                             self.method.training_phases()) as progress:
            while self.step < cfg.max_steps:
                batch = next(batches)
                # after fetching: creating a DataLoader iterator draws from the global RNG
                torch.manual_seed(step_seed(cfg.seed, self.ctx.rank, self.step))
                self.method.set_learning_rates(self.step)
                try:
                    values = self.method.train_step(batch, self.step)
                except NonFiniteError as error:
                    batches = self._on_non_finite(error, log)
                    averager = ScalarAverager()
                    continue
                averager.add(values)
                self.step += 1
                self.images_seen += images_per_step
                progress.advance()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps or stop.signum is not None:
                    try:  # before a checkpoint could keep them
                        self.check_weights()
                    except NonFiniteError as error:
                        self.step -= 1  # the step that produced them is not kept
                        batches = self._on_non_finite(error, log)
                        averager = ScalarAverager()
                        continue
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    steps_per_s, images_per_s = progress.interval_rates()
                    row = {**averager.pop(), "steps_per_s": steps_per_s, "images_per_s": images_per_s,
                           "images_seen": self.images_seen}
                    if self.ctx.device.type == "cuda":  # the largest peak over all GPUs of the run
                        row["gpu_peak_gb"] = distributed.max_across_ranks(
                            torch.cuda.max_memory_allocated(self.ctx.device) / 2**30, self.ctx.device)
                    if self.is_main:
                        self.logger.scalars(self.step, row)
                        for tag, values in self.method.histograms().items():  # e.g. 3dgp's cameras
                            self.logger.histogram(tag, values, self.step)
                        progress.summary(self.step, row, self.method.console_hidden_metrics)
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
                    last_saved = self.step
                if cfg.sample_every and self.step % cfg.sample_every == 0:
                    self.write_samples()
                if cfg.eval_every and self.step % cfg.eval_every == 0:
                    self.evaluate()
                if stop.signum is not None:
                    interrupted = True
                    break
        if last_saved != self.step:
            self.save()
        if not interrupted and not (cfg.sample_every and self.step % cfg.sample_every == 0):
            self.write_samples()
        if not interrupted:
            self.finish()
        if self.logger:
            self.logger.close()
        message = ("interrupted" if interrupted else "finished") + f" at step {self.step}; run directory {self.run_dir}"
        log.info(message)
        if self.is_main:
            hint = f"\nresume with: unflat train --resume {self.run_dir}" if interrupted else ""
            if already_done:  # a resume of a finished run trains nothing: say how to train further
                hint = (f"\nthe run had already reached its --max-steps {cfg.max_steps}; to train further, give a larger "
                        f"total: unflat train --resume {self.run_dir} --max-steps {2 * cfg.max_steps}")
            console.print(message + hint)
        return TrainResult(self.run_dir, self.step, interrupted)


def _null_logger():
    import logging

    logger = logging.getLogger("unflat.null")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def outside_run_message(path: Path) -> str:
    return (f"{path}: this checkpoint is not inside a run directory (RUN/checkpoints/{path.name}), so unflat will not "
            "write next to it; pass the run directory to --resume, or add --out NEW_RUN to continue these weights "
            "in a new run directory")


def resume_trainer(spec: MethodEntry, run: Path, payload: dict, overrides: dict | None = None, out: Path | None = None,
                   evaluator: PeriodicEvaluator | None = None) -> Trainer:
    """A Trainer that continues checkpoint ``payload`` (loaded from ``run``, a run of ``spec``); ``overrides`` may
    change e.g. max_steps; ``out``: continue in a new run directory instead (the only way to resume a checkpoint
    file that is not inside a run)."""
    run = Path(run)
    if out is None and run_dir_of(run) is None:
        raise UserError(outside_run_message(run))
    cfg = stored_config(checkpoint_file(run), spec.config_cls, payload)
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    if out is not None:
        cfg = dataclasses.replace(cfg, out=Path(out))
    return Trainer(spec, cfg, resume_from=run, run_dir=None if out is None else Path(out), resume_payload=payload,
                   evaluator=evaluator)


def restore_method(spec: MethodEntry, payload: dict, device: str | torch.device = "auto",
                   source: Path | None = None) -> tuple[RunConfig, TrainableMethod]:
    """The config and the trained method of checkpoint ``payload`` (a run of ``spec``, read from ``source``), on
    ``device``; the stored config, dataset info and networks are checked against the method first
    (``unflat.engine.checkpoint_schema``: a mismatch is one line naming the file and the field)."""
    source = Path(source) if source is not None else Path("checkpoint")
    cfg = stored_config(source, spec.config_cls, payload)
    info = stored_dataset_info(payload)
    device = resolve_device(device) if isinstance(device, str) else device
    ctx = TrainContext(device, autocast_dtype(cfg.precision, device))
    method = spec.method_cls(cfg, info, ctx)
    restore_checked(source, method, payload["method_state"])
    return cfg, method
