"""Progress bars and warnings on stderr, so that stdout stays clean for --json output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

console = Console(stderr=True, emoji=False)  # "up:bicubic" is a source name, not an emoji code


def warn(message: str) -> None:
    """One warning line on stderr."""
    console.print(f"[yellow]warning:[/] {message}", highlight=False, markup=True, soft_wrap=True)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._t, n)

    def update(self, **kw) -> None:
        if self._p is not None:
            self._p.update(self._t, **kw)


def _mean_rate(task) -> float | None:
    """Items per second since the start: steady where work arrives in batches (a batch of 256
    scored at once reads as 0 img/s, then 40,000 img/s, to an estimate over the last moments)."""
    elapsed = task.elapsed
    if not elapsed or elapsed < 0.5 or not task.completed:
        return None
    return task.completed / elapsed


class _Rate(TextColumn):
    """Items per second, averaged since the start."""

    def __init__(self, unit: str) -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task):  # type: ignore[override]
        from rich.text import Text

        speed = _mean_rate(task)
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


class _Eta(TextColumn):
    """Time left at the mean rate; blank when the total is unknown."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        from rich.text import Text

        speed = _mean_rate(task)
        if task.total is None or not speed or task.finished:
            return Text("eta -:--:--" if not task.finished else "", style="progress.remaining")
        left = int(max(task.total - task.completed, 0) / speed)
        return Text(f"eta {left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}", style="progress.remaining")


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, unit: str = "it", enabled: bool = True) -> Iterator[_Bar]:
    """A bar with count, rate and ETA (a running count when the total is unknown); a no-op when disabled.

    Give the total wherever it can be known cheaply (count_inputs counts folders and zips by
    name): a bar that reads `N/?` tells a person nothing about when it ends."""
    if not enabled:
        yield _Bar(None, None)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(unit),
        TimeElapsedColumn(),
        _Eta(),
    )
    with Progress(*columns, console=console, transient=False) as p:
        task = p.add_task(description, total=total)
        yield _Bar(p, task)
