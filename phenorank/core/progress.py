"""Progress bars for long steps (rich), written to stderr so tables on stdout stay clean."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
Advance = Callable[[int], None]


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Advance]:
    """Yield an ``advance(n)`` function for one step; the bar disappears when the step ends."""
    with progress_steps() as start:
        yield start(description, total)


@contextmanager
def progress_steps() -> Iterator[Callable[[str, int], Advance]]:
    """Yield ``start(description, total) -> advance`` for work made of several steps."""
    with _progress() as progress:
        def start(description: str, total: int) -> Advance:
            task = progress.add_task(description, total=total)
            return lambda n=1: progress.advance(task, n)
        yield start
