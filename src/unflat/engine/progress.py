"""A rich progress bar with step rate, images/s and ETA (plain summary lines when not on a terminal)."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

def make_console() -> Console:
    """unflat's console on stderr: rich markup and wrapping on a terminal; full-length lines when the output
    is a file or a pipe (a log should not be hard-wrapped at rich's default 80 columns)."""
    terminal = Console(stderr=True)
    return terminal if terminal.is_terminal else Console(stderr=True, soft_wrap=True)


console = make_console()


def warn(message: str, log: logging.Logger | None = None) -> None:
    """One line, said once before the work it concerns starts: a setting that cannot do what the user asked
    (also into ``log``, e.g. the run's run.log)."""
    console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
    if log is not None:
        log.warning(message)


def progress_bar(transient: bool = False) -> Progress:
    """The one progress bar style unflat uses for long work (training, dataset making, inversion)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )


class TrainingProgress:
    """Tracks step/s and images/s; drives the bar and prints one summary line per logging interval."""

    def __init__(self, total_steps: int, first_step: int, images_per_step: int, description: str) -> None:
        self.images_per_step = images_per_step
        self.total_steps = total_steps
        self.bar = progress_bar()
        self.task = self.bar.add_task(description, total=total_steps, completed=first_step, rate="")
        self._t0 = time.perf_counter()
        self._steps_since = 0

    def __enter__(self) -> "TrainingProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def advance(self) -> None:
        self._steps_since += 1
        self.bar.advance(self.task)

    def interval_rates(self) -> tuple[float, float]:
        """(steps/s, images/s) since the last call."""
        now = time.perf_counter()
        dt = max(now - self._t0, 1e-9)
        steps_per_s = self._steps_since / dt
        self._t0, self._steps_since = now, 0
        return steps_per_s, steps_per_s * self.images_per_step

    def summary(self, step: int, values: dict[str, float], hidden: tuple[str, ...] = ()) -> None:
        """One console line: step, rate, ETA and the values (those whose names start with one of ``hidden``
        are left out)."""
        rate = f"{values.get('images_per_s', 0):.1f} img/s"
        self.bar.update(self.task, rate=rate)
        shown = "  ".join(f"{k}={v:.4g}" for k, v in values.items()
                          if k not in ("images_per_s", "steps_per_s") and not k.startswith(hidden))
        remaining = (self.total_steps - step) / max(values.get("steps_per_s", 0), 1e-9)
        eta = time.strftime("%H:%M:%S", time.gmtime(min(remaining, 359999)))
        console.print(f"step {step}/{self.total_steps}  {rate}  eta {eta}  {shown}", highlight=False)
