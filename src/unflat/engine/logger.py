"""Where training numbers go: metrics.jsonl, TensorBoard, run.log, and the console.

Scalars are accumulated as tensors and only read back (one device sync) at each logging interval.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from unflat import __version__


class ScalarAverager:
    """Running sums of per-step scalars, read back once per interval."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor | float] = {}
        self.count = 0

    def add(self, values: dict[str, float | Tensor]) -> None:
        for key, value in values.items():
            value = value.detach().float() if isinstance(value, Tensor) else float(value)
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {k: float(v) / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


def _end_cut_line(path: Path) -> None:
    """A run killed mid-write leaves a partial last line; end it so the resumed run's rows stay separate lines."""
    try:
        with open(path, "rb+") as handle:
            handle.seek(0, 2)
            if handle.tell() == 0:
                return
            handle.seek(-1, 2)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
    except FileNotFoundError:
        pass


class MetricsLogger:
    """Appends one JSON object per interval to metrics.jsonl and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        _end_cut_line(self.path)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
            except ImportError:
                logging.getLogger("unflat").warning("tensorboard is not installed (pip install 'unflat[tensorboard]'); writing metrics.jsonl only")

    def scalars(self, step: int, values: dict[str, float], event: str | None = None) -> None:
        row = {"step": step, "time": round(time.time(), 3), **values}
        if event:
            row["event"] = event
        try:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(row) + "\n")
        except OSError as exc:  # name the file in the CLI's one-line error (a full disk reports none)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)

    def image(self, tag: str, image_hwc_uint8, step: int) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, image_hwc_uint8, step, dataformats="HWC")

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        if self.tb is not None:
            self.tb.add_histogram(tag, values.detach().float().cpu(), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


def git_hash() -> str:
    try:
        root = Path(__file__).resolve().parents[3]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class _RunLogHandler(logging.FileHandler):
    """A failed write to run.log (a full disk) stops the run like a failed metrics row, with the CLI's one-line
    disk-full error, instead of logging's "--- Logging error ---" traceback on stderr and a run that logs nothing."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's naming)
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror, self.baseFilename) from error
        super().handleError(record)

    def close(self) -> None:
        try:
            super().close()  # flushes what the failed write left in the buffer: fails again
        except OSError:
            pass  # already raised, naming run.log, where the write failed


def open_run_log(run_dir: Path, device: torch.device) -> logging.Logger:
    """run.log: command line, versions, git hash and device, then every event of the run."""
    logger = logging.getLogger("unflat.run")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler = _RunLogHandler(Path(run_dir) / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    logger.info("command: %s", " ".join(sys.argv))
    logger.info(
        "unflat %s, torch %s, CUDA %s, python %s, git %s", __version__, torch.__version__, torch.version.cuda,
        platform.python_version(), git_hash(),
    )
    logger.info("device: %s (%s)", device, device_name)
    return logger


@contextmanager
def run_log_set_aside() -> Iterator[None]:
    """A run inside a run (a helper trained while a method is built or steps): the outer run.log is detached
    (not closed) while the inner run writes its own, and attached again afterwards."""
    logger = logging.getLogger("unflat.run")
    saved, propagate = list(logger.handlers), logger.propagate
    for handler in saved:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        close_run_log()
        for handler in saved:
            logger.addHandler(handler)
        logger.propagate = propagate


def close_run_log() -> None:
    """Detach run.log at the end of a run: close its file, let 'unflat.run' records propagate again."""
    logger = logging.getLogger("unflat.run")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True
