"""Atomic, self-describing checkpoints that load without unpickling code.

Layout: ``RUN/checkpoints/step-XXXXXXXX.pt`` plus ``latest.pt`` (a hard link to the newest). Each file
is written to a temporary name, fsync'd and renamed, so a crash or kill at any moment leaves the
previous ``latest.pt`` intact. Loading always uses ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import torch

from unflat import __version__
from unflat.errors import CheckpointError, UserError

CHECKPOINT_FORMAT = "unflat-checkpoint"
CHECKPOINT_VERSION = 1
_STEP_FILE = re.compile(r"^step-(\d{8})\.pt$")


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_torch_save(payload: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or a PID we cannot ask about): leave its file alone
    return True


def is_run_dir(path: Path) -> bool:
    """True for a folder an unflat training run wrote (its method.txt, checkpoints/ or config.yaml header)."""
    path = Path(path)
    if (path / "method.txt").is_file() or (path / "checkpoints" / "latest.pt").is_file():
        return True
    try:
        with open(path / "config.yaml", encoding="utf-8", errors="replace") as handle:
            return handle.read(64).startswith("# unflat run config")
    except OSError:
        return False


def run_dir_of(path: Path) -> Path | None:
    """The run directory of ``path``: itself for a folder, RUN for ``RUN/checkpoints/FILE.pt`` (relative paths
    such as ``latest.pt`` inside RUN/checkpoints included); None for a checkpoint file anywhere else."""
    path = Path(path)
    if path.is_dir():
        return path
    parent = path.absolute().parent
    if parent.name != "checkpoints" or not is_run_dir(parent.parent):
        return None
    return path.parent.parent if path.parent.name == "checkpoints" else parent.parent


def save_checkpoint(run_dir: Path, payload: dict, step: int, keep_last: int = 3) -> Path:
    """Write ``step-XXXXXXXX.pt`` atomically, point ``latest.pt`` at it, prune old ones."""
    directory = checkpoint_dir(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "unflat_version": __version__, **payload}
    step_path = directory / f"step-{step:08d}.pt"
    latest = directory / "latest.pt"
    for stale in directory.glob(".*.tmp-*"):  # left by a process killed mid-write (only rank 0 writes here)
        pid = stale.name.rsplit(".tmp-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):  # never another live writer's
            stale.unlink(missing_ok=True)
    try:
        _atomic_torch_save(payload, step_path)
        link_tmp = directory / f".latest.pt.tmp-{os.getpid()}"
        link_tmp.unlink(missing_ok=True)
        try:
            os.link(step_path, link_tmp)
        except OSError:  # file systems without hard links
            shutil.copyfile(step_path, link_tmp)
        os.replace(link_tmp, latest)
        _fsync_dir(directory)
    except (OSError, RuntimeError) as exc:  # torch.save reports a short write (disk full, file too big) as RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"short write, is the disk full? {_first_line(exc)}"
        raise CheckpointWriteError(
            f"could not write checkpoint {step_path} ({reason}); the previous checkpoint "
            f"{latest} is intact. Free disk space or fix permissions, then resume with `unflat train --resume {run_dir}`"
        ) from exc
    if keep_last > 0:
        for old in list_checkpoints(run_dir)[:-keep_last]:
            old.unlink(missing_ok=True)
    return step_path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints, oldest first."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _STEP_FILE.match(p.name))


def latest_checkpoint(run_dir: Path) -> Path | None:
    latest = checkpoint_dir(run_dir) / "latest.pt"
    return latest if latest.exists() else None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely (no code execution) and check it is an unflat checkpoint."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no checkpoints/latest.pt in this run directory")
        path = found
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):  # torch's zip format, or a legacy pickle
        raise CheckpointError(f"{path}: not a PyTorch checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file contains Python objects other than tensors and plain data "
            f"(it could run code). Only load checkpoints you trust, written by unflat. Details: {_first_line(exc)}"
        ) from None
    except Exception as exc:  # garbage makes torch's unpickler raise almost anything (struct.error, KeyError, ...)
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({type(exc).__name__}: {_first_line(exc)})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an unflat checkpoint (missing 'format': '{CHECKPOINT_FORMAT}')")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {payload.get('format_version')} is not supported by unflat {__version__}"
        )
    from unflat.engine.checkpoint_schema import validate_payload  # noqa: PLC0415 (loaded only when a checkpoint is)

    validate_payload(path, payload)
    return payload


def checkpoint_file(path: Path) -> Path:
    """The file ``load_checkpoint(path)`` reads: a run directory's latest.pt, or ``path`` itself."""
    path = Path(path)
    return checkpoint_dir(path) / "latest.pt" if path.is_dir() else path


def estimate_checkpoint_bytes(state: object) -> int:
    """Bytes of tensor data in a nested state dict (a lower bound of the file size)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(estimate_checkpoint_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(estimate_checkpoint_bytes(v) for v in state)
    return 0
