"""Progress of long steps, on stderr so tables on stdout stay clean: rich bars with the time left
on a terminal; elsewhere (a CI log, a ``nohup`` file, a pipe) one plain line per unit of work
(a grid cell, a batch), at most one a second but always the last, with the elapsed time."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

console = Console(stderr=True)
Advance = Callable[[int], None]
LOG_INTERVAL = 1.0  # seconds between two plain lines of one step


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Advance]:
    """Yield an ``advance(n)`` function for one step; the bar disappears when the step ends."""
    with progress_steps() as start:
        yield start(description, total)


@contextmanager
def progress_steps() -> Iterator[Callable[[str, int], Advance]]:
    """Yield ``start(description, total) -> advance`` for work made of several steps."""
    if not console.is_terminal:
        yield _plain_start
        return
    with _progress() as progress:
        def start(description: str, total: int) -> Advance:
            task = progress.add_task(description, total=total)
            return lambda n=1: progress.advance(task, n)
        yield start


def _plain_start(description: str, total: int) -> Advance:
    started = time.perf_counter()
    state = {"done": 0, "said": -LOG_INTERVAL}

    def advance(n: int = 1) -> None:
        state["done"] += n
        elapsed = time.perf_counter() - started
        if state["done"] >= total or elapsed - state["said"] >= LOG_INTERVAL:
            state["said"] = elapsed
            rate = elapsed / state["done"] if state["done"] else 0.0
            left = f", about {rate * (total - state['done']):.0f} s left" if state["done"] < total else ""
            print(f"[{elapsed:7.1f} s] {description}: {state['done']}/{total}{left}", file=sys.stderr, flush=True)

    return advance
