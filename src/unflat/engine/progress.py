"""Progress of long work: a rich bar with rate and ETA on a terminal; plain lines now and then otherwise.

``PhaseProgress`` is one phase of a command (an inversion stage, an evaluation phase, rendering a dataset):
its ETA comes from its own rate. ``TrainingProgress`` is the training loop: a method's schedule phases
(IG-GAN's pre-training then GAN, progressive's stages) each get their own measured rate, so the ETA does not
carry a fast phase's rate into a slow one.
"""

from __future__ import annotations

import logging
import os
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


def warnings_as_notes() -> None:
    """Python warnings (unflat's own and its libraries', e.g. PyTorch's) become one "note:" line on the console,
    without the source path, line number and code that Python's default format adds (`--debug` keeps them)."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        text = " ".join(str(message).split())
        text = text.split(" (Triggered internally at ")[0]  # PyTorch's C++ source location
        console.print(f"[yellow]note:[/] {escape(text)}", highlight=False)

    warnings.showwarning = show


def plain_every_s() -> float:
    """Seconds between plain progress lines when the output is not a terminal ($UNFLAT_PROGRESS_EVERY_S, 10)."""
    try:
        return max(float(os.environ.get("UNFLAT_PROGRESS_EVERY_S", "10")), 0.0)
    except ValueError:
        return 10.0


def clock(seconds: float) -> str:
    """HH:MM:SS (capped at 99:59:59)."""
    seconds = int(min(max(seconds, 0.0), 359999))
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PhaseProgress:
    """One phase of work of known size. On a terminal: a transient bar with its ETA. Otherwise: a line when it
    starts, one every ``plain_every_s()`` seconds (done/total, rate, ETA from this phase's own rate) and one
    when it ends. ``enabled=False``: silent."""

    def __init__(self, description: str, total: int, unit: str = "steps", enabled: bool = True) -> None:
        self.description, self.total, self.unit, self.enabled = description, max(int(total), 0), unit, enabled
        self.done = 0
        self.terminal = console.is_terminal
        self.bar = progress_bar(transient=True) if enabled and self.terminal else None
        self.every = plain_every_s()

    def __enter__(self) -> "PhaseProgress":
        self.start = self._last_line = time.perf_counter()
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=self.total, rate="")
        elif self.enabled:
            console.print(f"{self.description}: {self.total} {self.unit}", highlight=False)
        return self

    def advance(self, n: int = 1, info: str = "") -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(self.task, advance=n, rate=info)
            return
        now = time.perf_counter()
        if self.enabled and now - self._last_line >= self.every and self.done < self.total:
            self._last_line = now
            console.print(f"{self.description}: {self.line(now)}" + (f"  {info}" if info else ""), highlight=False)

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        shown = clock(eta) if eta != float("inf") else "?"
        return (f"{self.done}/{self.total} {self.unit} ({100 * self.done / max(self.total, 1):.0f}%), "
                f"{rate:.3g} {self.unit}/s, eta {shown}")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        if self.enabled and exc[0] is None:
            console.print(f"{self.description}: {self.done}/{self.total} {self.unit} in "
                          f"{time.perf_counter() - self.start:.1f} s", highlight=False)


def progress_bar(transient: bool = False, own_eta: bool = False) -> Progress:
    """The one progress bar style unflat uses for long work (training, dataset making, inversion).
    ``own_eta``: the ETA is the task's ``eta`` field (set by the caller) instead of rich's recent-speed guess."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TextColumn("{task.fields[eta]}") if own_eta else TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )


def phase_at(phases: list[tuple[str, int]], step: int) -> str:
    """The name of the schedule phase (``Method.training_phases``) that step ``step`` (0-based) belongs to
    ("" without phases)."""
    name = ""
    for phase, first in sorted(phases, key=lambda p: p[1]):
        if step >= first:
            name = phase
    return name


class TrainingProgress:
    """Tracks step/s and images/s; drives the bar and prints one summary line per logging interval.

    ``phases``: (name, first step) of a method's schedule, e.g. [("pre-training", 0), ("GAN", 300)]. Each
    phase's rate is measured on its own steps; the ETA adds the remaining steps of each phase at that phase's
    rate, and says so when a later phase has not run yet in this process (its rate is unknown)."""

    def __init__(self, total_steps: int, first_step: int, images_per_step: int, description: str,
                 phases: list[tuple[str, int]] | None = None) -> None:
        self.images_per_step = images_per_step
        self.total_steps = total_steps
        self.description = description
        self.phases = sorted(phases or [], key=lambda p: p[1])
        self.step = first_step
        self.bar = progress_bar(own_eta=True)
        self.task = self.bar.add_task(self._label(first_step), total=total_steps, completed=first_step, rate="", eta="")
        self._t0 = self._last_step_t = time.perf_counter()
        self._steps_since = 0
        self._phase_time: dict[str, float] = {}
        self._phase_steps: dict[str, int] = {}

    def __enter__(self) -> "TrainingProgress":
        self.bar.__enter__()
        self._t0 = self._last_step_t = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def phase_at(self, step: int) -> str:
        return phase_at(self.phases, step)

    def _label(self, step: int) -> str:
        phase = self.phase_at(min(step, self.total_steps - 1))
        return f"{self.description} ({phase})" if phase and len(self.phases) > 1 else self.description

    def advance(self) -> None:
        now = time.perf_counter()
        phase = self.phase_at(self.step)
        self._phase_time[phase] = self._phase_time.get(phase, 0.0) + now - self._last_step_t
        self._phase_steps[phase] = self._phase_steps.get(phase, 0) + 1
        self._last_step_t = now
        self.step += 1
        self._steps_since += 1
        if self.bar.live.is_started:  # a terminal: the bar's ETA at the phases' own rates
            self.bar.update(self.task, advance=1, description=self._label(self.step), eta=self.eta(self.step))

    def interval_rates(self) -> tuple[float, float]:
        """(steps/s, images/s) since the last call."""
        now = time.perf_counter()
        dt = max(now - self._t0, 1e-9)
        steps_per_s = self._steps_since / dt
        self._t0, self._steps_since = now, 0
        return steps_per_s, steps_per_s * self.images_per_step

    def _remaining_by_phase(self, step: int) -> list[tuple[str, int]]:
        """(phase, steps left in it) from ``step`` to the end, in order."""
        bounds = [first for _, first in self.phases[1:]] + [self.total_steps]
        names = [name for name, _ in self.phases] or [""]
        left = []
        start = self.phases[0][1] if self.phases else 0
        for name, end in zip(names, bounds):
            steps = max(0, min(end, self.total_steps) - max(step, start))
            if steps:
                left.append((name, steps))
            start = end
        return left

    def eta(self, step: int, fallback_steps_per_s: float = 0.0) -> str:
        """Remaining time at each phase's own rate; "then N PHASE steps (rate not measured yet)" for phases that
        have not run in this process."""
        seconds, known, unknown = 0.0, [], []
        for name, steps in self._remaining_by_phase(step):
            done = self._phase_steps.get(name, 0)
            rate = done / max(self._phase_time.get(name, 0.0), 1e-9) if done else 0.0
            if not rate and name == self.phase_at(max(step - 1, 0)):  # the caller's rate was measured in this phase
                rate = fallback_steps_per_s
            if rate > 0:
                seconds += steps / rate
                known.append(name)
            else:
                unknown.append(f"{steps} {name} steps" if name else f"{steps} steps")
        if not unknown:
            return clock(seconds)
        if not known:
            return f"? ({', '.join(unknown)} to go, rate not measured yet)"
        return f"{clock(seconds)} for {', '.join(known)}, then {', '.join(unknown)} (rate not measured yet)"

    def summary(self, step: int, values: dict[str, float], hidden: tuple[str, ...] = ()) -> None:
        """One console line: step, rate, ETA and the values (those whose names start with one of ``hidden``
        are left out)."""
        rate = f"{values.get('images_per_s', 0):.1f} img/s"
        self.bar.update(self.task, rate=rate)
        shown = "  ".join(f"{k}={v:.4g}" for k, v in values.items()
                          if k not in ("images_per_s", "steps_per_s") and not k.startswith(hidden))
        eta = self.eta(step, values.get("steps_per_s", 0.0))
        console.print(f"step {step}/{self.total_steps}  {rate}  eta {eta}  {shown}", highlight=False)
