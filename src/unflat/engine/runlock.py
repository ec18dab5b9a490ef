"""One training per run directory: ``RUN/.lock`` held with ``fcntl.flock`` while a process trains there.

The kernel drops a flock when its holder exits, however it exits (kill -9 included), so a lock is never
stale: a lock file left on disk by a dead process is simply taken by the next one. The file holds the PID
of the process holding the lock, for the refusal message. Only rank 0 of a DDP run takes it.
"""

from __future__ import annotations

import os
from pathlib import Path

from unflat.errors import UserError

LOCK_NAME = ".lock"


class RunLocked(UserError):
    """Another process is training in this run directory."""


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._handle = None

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            return self
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: held by another process
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunLocked(
                f"{self.run_dir}: another unflat process (PID {holder}) is training in this run directory; wait for it "
                f"to finish or stop it (kill {holder}; it writes a checkpoint first), or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        import fcntl

        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()

    @property
    def held(self) -> bool:
        return self._handle is not None
