"""The demo's numbered steps: a header line when each starts, its time when it ends, and a summary table."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.markup import escape
from rich.table import Table

from unflat.engine.progress import console


class DemoSteps:
    """``with steps.step("title"): ...`` prints ``[k/N] title``, then ``[k/N] title: 12.3 s``; ``summary()`` the
    table of every step's time and the total since the demo started."""

    def __init__(self, total: int) -> None:
        self.total, self.start = total, time.perf_counter()
        self.times: list[tuple[str, float]] = []

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        k = len(self.times) + 1
        console.print(f"\n[bold cyan][{k}/{self.total}] {escape(title)}[/]", highlight=False)
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.times.append((title, seconds))
        console.print(f"[cyan][{k}/{self.total}] {escape(title)}: {seconds:.1f} s[/]", highlight=False)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def summary(self) -> Table:
        table = Table(title=f"unflat demo: {self.elapsed() / 60:.1f} min", title_justify="left")
        table.add_column("step")
        table.add_column("seconds", justify="right")
        for title, seconds in self.times:
            table.add_row(escape(title), f"{seconds:.1f}")
        table.add_row("[bold]total[/]", f"[bold]{self.elapsed():.1f}[/]")
        return table
